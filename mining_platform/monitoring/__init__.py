"""Drift monitoring: a day's committed features (and logged scores) against the champion's reference
distributions (stored with the version in `mining_platform.registry`)."""
