"""For the dataset's consumers: the reading API and the Delta Lake export."""
