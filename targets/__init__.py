"""Target files (TOML data, one per device or template), shipped as package data of hwmodels; schema in hwmodels.targets."""
