"""`/ready`, what the chart's readiness and start-up probes ask: not ready while a champion is still loading (a
replica would answer 503), ready once it serves, and ready when a project has no champion to serve at all."""

import httpx

from mining_platform.serving.app import create_app
from tests.conftest import wait_until
from tests.fixtures import endpoint_server
from tests.fixtures.serving import definitions, promote, register, serving_config  # noqa: F401 (definitions)


def test_ready_once_the_champion_is_served(project, definitions, mongo, mlflow_resource, monkeypatch):
    logged = register(project, mlflow_resource, seed=1)
    promote(mlflow_resource, logged)
    from mining_platform.serving import swap

    loads = []
    real = swap.load_version

    def slow_first_load(*args, **kwargs):  # the first load waits until the test has seen "not ready"
        if not loads:
            loads.append("held")
            wait_until(lambda: len(loads) > 1, timeout=30, what="the test's look at /ready")
        return real(*args, **kwargs)

    monkeypatch.setattr(swap, "load_version", slow_first_load)
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: loads, timeout=30, what="the first load begun")
        loading = httpx.get(f"{url}/ready")
        loads.append("seen")
        wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, timeout=30, what="ready")
        served = httpx.get(f"{url}/ready").json()
        alive = httpx.get(f"{url}/health")
    assert loading.status_code == 503 and loading.json()["ready"] is False
    assert loading.json()["waiting"] == {"churn": "loading"}
    assert served == {"ready": True} and alive.status_code == 200


def test_ready_without_a_champion_to_serve(project, definitions, mongo, mlflow_resource):
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, timeout=30, what="ready")
        assert httpx.post(f"{url}/v1/churn/predict", json={"rows": [{}]}).status_code == 503  # nothing deployed
