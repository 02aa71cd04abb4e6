"""Samples, training, evaluation and the MLflow registry: from committed features to gated model versions."""
