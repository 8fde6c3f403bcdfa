"""Routes of the quality core: quarantine, freshness, scorecards and benefit, notifications."""
