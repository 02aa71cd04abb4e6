"""The scoring endpoint (FastAPI)."""
