"""The scoring endpoint (FastAPI): each project's champion, hot-reloaded, with online feature lookup
and a prediction log. It imports neither Dagster nor training code; MLflow and XGBoost only when it
loads a model."""
