"""Dagster side of ingest: staging, published and quarantine assets per dataset, rule checks
and landing sensors."""
