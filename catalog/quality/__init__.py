"""Quality and evaluation over published versions: references, freshness, scorecards."""
