"""The scoring endpoint: served in a thread or started as replicas, against MongoDB and MLflow."""
