"""Sensors that close the loop: drift → retrain, and champion alias → redeploy."""
