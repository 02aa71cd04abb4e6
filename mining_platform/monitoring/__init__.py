"""Drift monitoring: reference distributions stored with each model version, and their comparison with a day."""
