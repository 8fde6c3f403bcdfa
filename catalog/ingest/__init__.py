"""From a department's file to a published version: read, stage, check, publish, file away."""
