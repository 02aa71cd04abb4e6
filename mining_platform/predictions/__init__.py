"""Batch predictions: each committed feature day scored by the served versions, published like every partition."""
