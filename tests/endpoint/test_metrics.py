"""`/metrics`: what a Prometheus scrape of the endpoint reads after real requests, refusals and a reload."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mining_platform.serving.app import create_app
from tests.conftest import wait_until
from tests.fixtures import endpoint_server
from tests.fixtures.model_versions import synthetic_rows
from tests.fixtures.serving import (  # noqa: F401 (definitions: a fixture)
    ADMIN,
    FEATURES,
    admin,
    as_rows,
    definitions,
    predict,
    promote,
    register,
    serving_config,
)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, as Prometheus parses the exposition."""
    reply = httpx.get(f"{url}/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(reply.text) for sample in family.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_scrape_counts_requests_rows_refusals_and_loads_and_shows_the_served_version(
        project, definitions, mongo, mlflow_resource):
    first = register(project, mlflow_resource, seed=1)
    promote(mlflow_resource, first)
    rows = as_rows(synthetic_rows(FEATURES, 7, seed=3))
    config = serving_config(project, definitions, mongo, mlflow_resource, log_sample_rate=1.0)
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"],
                   timeout=30, what="the champion loaded")
        assert predict(url, "churn", {"rows": rows}).status_code == 200
        assert predict(url, "churn", {"rows": rows[:2]}).status_code == 200
        assert predict(url, "churn", {"rows": [{"events": "many"}]}).status_code == 422
        for made_up in ("nope", "x" * 200):
            assert predict(url, made_up, {"rows": rows}).status_code == 404
        before = scrape(url)
        second = register(project, mlflow_resource, seed=2)
        promote(mlflow_resource, second)
        assert admin(url, "churn").status_code == 200
        wait_until(lambda: httpx.get(f"{url}/v1/churn/version").json()["version"] == second.version, timeout=30,
                   what="the new champion")
        wait_until(lambda: value(scrape(url), "mining_endpoint_prediction_log_written_total") >= 9, timeout=30,
                   what="the prediction log written")
        after = scrape(url)

    ok = {"project": "churn", "role": "champion", "version": first.version, "status": "200"}
    assert value(before, "mining_endpoint_requests_total", **ok) == 2
    assert value(before, "mining_endpoint_requests_total", project="churn", role="none", version="none",
                 status="422") == 1
    # A project nobody serves is one label, however many names are made up.
    assert value(before, "mining_endpoint_requests_total", project="unknown", role="none", version="none",
                 status="404") == 2
    assert not any(dict(labels).get("project") in ("nope", "x" * 200) for _, labels in before)
    assert value(before, "mining_endpoint_rows_scored_total", project="churn", role="champion",
                 version=first.version, answered="true") == 9
    assert value(before, "mining_endpoint_request_seconds_count", project="churn") == 3
    assert value(before, "mining_endpoint_model_seconds_count", project="churn") == 2
    assert value(before, "mining_endpoint_served_version", project="churn", role="champion",
                 model=project.model.name, version=first.version) == 1
    assert value(before, "mining_endpoint_project_up", project="churn") == 1
    assert value(before, "mining_endpoint_loads_total", project="churn", role="champion") == 1
    assert ("mining_endpoint_prediction_log_buffered", ()) in before

    # After the reload: the new version is the one served, and the load is counted.
    assert value(after, "mining_endpoint_served_version", project="churn", role="champion",
                 model=project.model.name, version=second.version) == 1
    assert value(after, "mining_endpoint_served_version", project="churn", role="champion",
                 model=project.model.name, version=first.version) == 0
    assert value(after, "mining_endpoint_loads_total", project="churn", role="champion") == 2
    assert value(after, "mining_endpoint_failed_loads_total", project="churn", role="champion") == 0
    assert value(after, "mining_endpoint_prediction_log_buffered") == 0


def test_with_metrics_off_nothing_is_counted_and_there_is_no_scrape(project, definitions, mongo, mlflow_resource):
    logged = register(project, mlflow_resource, seed=1)
    promote(mlflow_resource, logged)
    config = serving_config(project, definitions, mongo, mlflow_resource, metrics=False)
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"],
                   timeout=30, what="the champion loaded")
        assert predict(url, "churn", {"rows": as_rows(synthetic_rows(FEATURES, 3, seed=3))}).status_code == 200
        scraped = httpx.get(f"{url}/metrics")
    assert scraped.status_code == 404 and "MINING_ENDPOINT_METRICS=off" in scraped.json()["detail"]
