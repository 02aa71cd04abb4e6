"""Which failures the retry policy retries: passing outages of MongoDB, MLflow and the endpoint, nothing else."""


from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mining_platform.tools.embedded_mongo import free_port
from mining_platform.transient import is_transient
from tests.fixtures.errors import raised


def test_an_unreachable_mlflow_is_transient_but_a_missing_model_is_not(monkeypatch, mlflow_resource):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    url = f"http://127.0.0.1:{free_port()}"
    down = MlflowClient(tracking_uri=url, registry_uri=url)
    error = raised(lambda: down.get_registered_model("churn_xgb"))
    assert isinstance(error, MlflowException) and is_transient(error)
    missing = raised(lambda: mlflow_resource.client().get_registered_model("no_such_model"))
    assert isinstance(missing, MlflowException) and not is_transient(missing)
