"""Finding datasets in the catalog."""
