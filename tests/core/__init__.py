"""The core against the embedded MongoDB over a plain pymongo fixture (and MLflow where a step needs it)."""
