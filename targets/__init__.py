"""Target files (TOML data, one per device or template); see codesign.targets_schema."""
