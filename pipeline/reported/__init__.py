"""Reports: the run summary (Markdown) and the version report (one offline HTML page)."""
