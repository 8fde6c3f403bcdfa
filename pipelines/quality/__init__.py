"""Dagster side of quality: freshness checks, the sweep for stale datasets and overdue
requests, and notifications of failed runs."""
