"""Shared fixtures: the embedded MongoDB server over TCP, a fresh database per test, a local MLflow store.

`mongo` is plain pymongo (`tests/fixtures/mongo.py`): the core's tests need nothing else. The Dagster layer's
tests (`tests/dagster/`) get a `MongoResource` under the same name; any test can ask for `mongo_resource`, the
resource on the same database, for one `materialize`. Dagster is imported only by the fixtures that build one.
"""

import time
import uuid
from pathlib import Path

import pytest

from mining_platform.spec.project import ProjectConfig, load_project
from mining_platform.tools import embedded_mongo
from mining_platform.tools.embedded_mongo import free_port  # noqa: F401  (re-exported for tests)
from tests.fixtures.mongo import Mongo, as_resource

REPO = Path(__file__).resolve().parents[1]


def wait_until(probe, *, timeout: float, what: str) -> None:
    """Poll `probe` until it returns true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s")
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    """Each test's own MINING_HOME (token files and caches never land in the checkout), and no retry delays."""
    home = tmp_path / "mining_home"
    monkeypatch.setenv("MINING_HOME", str(home))
    # Steps still retry outages, without the production backoff (15 s, 30 s, 60 s).
    monkeypatch.setenv("MINING_STEP_RETRY_DELAY_SECONDS", "0")
    return home


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory) -> str:
    """The embedded MongoDB (SecantusDB) as its own process on a free loopback port."""
    with embedded_mongo.secured_server(tmp_path_factory.mktemp("secantus")) as uri:
        yield uri


@pytest.fixture
def plain_mongo(mongo_uri) -> Mongo:
    """A platform database of its own, dropped after the test with every database named after it (namespaces,
    endpoint and demo databases)."""
    databases = Mongo(uri=mongo_uri, database=f"test_{uuid.uuid4().hex[:12]}")
    yield databases
    databases.drop()


@pytest.fixture
def mongo(plain_mongo) -> Mongo:
    return plain_mongo


@pytest.fixture
def mongo_resource(plain_mongo):
    """The Dagster `MongoResource` on the same database, for a test that materialises an asset."""
    return as_resource(plain_mongo)


@pytest.fixture(scope="session")
def mlflow_resource(tmp_path_factory):
    """A local MLflow tracking store and registry (sqlite); tests use registered model names of their own."""
    from resources import MlflowResource

    root = tmp_path_factory.mktemp("mlflow")
    return MlflowResource(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=str(root / "artifacts"))


@pytest.fixture
def churn_project() -> ProjectConfig:
    return load_project(REPO / "projects" / "churn")


@pytest.fixture
def small_project(churn_project) -> ProjectConfig:
    """The churn project with a small demo population, to keep the embedded server fast."""
    return churn_project.model_copy(update={"demo": churn_project.demo.model_copy(update={"users": 300})})
