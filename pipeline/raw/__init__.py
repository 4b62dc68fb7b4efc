"""The raw layer: finding a run's listings, their capture dates, and reading them safely in parts."""
