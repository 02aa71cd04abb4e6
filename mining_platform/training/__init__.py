"""Training: committed samples loaded as columns, an XGBoost version trained, evaluated, registered
in MLflow and judged by the gate."""
