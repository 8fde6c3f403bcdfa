"""The catalog in the formats other systems read (DCAT-AP)."""
