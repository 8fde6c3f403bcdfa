"""The central store: the DuckLake lake, its dataset versions and the reads over them."""
