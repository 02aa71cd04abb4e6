"""The scoring endpoint over HTTP: predictions, online lookup, hot reload, auth, bad input, the prediction log."""

import concurrent.futures
import datetime as dt
import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from mining_platform.demo.store import ensure_event_indexes
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.registry import aliases
from mining_platform.serving.app import ServingConfig, create_app
from mining_platform.store import markers
from mining_platform.tools.embedded_mongo import free_port
from tests.conftest import wait_until
from tests.fixtures import endpoint_server
from tests.fixtures.definitions import at
from tests.fixtures.model_versions import register_version, synthetic_rows, unique_model_name
from tests.fixtures.serving import (  # noqa: F401 (definitions: a fixture)
    ADMIN,
    FEATURES,
    JSON,
    TOKEN,
    admin,
    as_rows,
    definitions,
    predict,
    promote,
    reference_scores,
    register,
    serving_config,
)
from tests.fixtures.specs import make_spec

UTC = dt.timezone.utc
def test_rows_are_scored_exactly_as_the_model_itself_scores_them(project, definitions, mongo, mlflow_resource):
    logged = register(project, mlflow_resource, seed=1)
    promote(mlflow_resource, logged)
    X = synthetic_rows(FEATURES, 40, seed=99)
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30,
                   what="the champion loaded at start")
        answer = predict(url, "churn", {"rows": as_rows(X)})
        version = httpx.get(f"{url}/v1/churn/version").json()
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == {"name": logged.name, "version": logged.version, "task": "binary"}
    assert answer.json()["predictions"] == reference_scores(mlflow_resource, logged, X)
    assert version["version"] == logged.version and version["alias"] == "champion"
    assert version["run_id"] == logged.run_id and version["features"] == FEATURES and version["loaded_at"]


def publish(mongo, project, definitions, days: list[str]) -> None:
    for definition in definitions:
        partitions = [(day, dt.datetime.fromisoformat(day).replace(tzinfo=UTC) + dt.timedelta(days=1)) for day in days]
        report = run_feature_pipeline(
            db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
            sources=mongo.analytics_db(), project=project, definition=definition, partitions=partitions,
            dagster_run_id=None, max_time_ms=60_000)
        assert not report.failed, [o.error for o in report.failed]


def test_entities_are_scored_on_their_latest_committed_features(project, definitions, mongo, mlflow_resource):
    db = mongo.demo_db("churn")
    ensure_event_indexes(db["user_events"], entity_field="user_id")
    db["user_events"].insert_many([
        {"user_id": "u1", **at(3)}, {"user_id": "u1", **at(4, event_type="purchase", amount=7.5)},
        {"user_id": "u2", **at(4)}, {"user_id": "u2", **at(4, 13)},
        {"user_id": "u3", **at(1)},  # only in the older partition's window
    ])
    publish(mongo, project, definitions, ["2024-01-03", "2024-01-04"])
    logged = register(project, mlflow_resource, seed=2, definitions=definitions)
    promote(mlflow_resource, logged)

    def committed(day: str) -> np.ndarray:
        as_of = dt.datetime.fromisoformat(day).replace(tzinfo=UTC) + dt.timedelta(days=1)
        rows = {}
        for d in definitions:
            for doc in markers.read_committed(mongo.project_db(project.name), d, as_of):
                rows.setdefault(doc["user_id"], {}).update(doc)
        return np.array([[rows[u].get(f) for f in FEATURES] for u in ("u2", "u1", "u2")], dtype=float)

    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        answer = predict(url, "churn", {"entities": ["u2", "u1", "u2"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["features_as_of"] == {d.name: "2024-01-05T00:00:00+00:00" for d in definitions}
        assert answer.json()["predictions"] == reference_scores(mlflow_resource, logged, committed("2024-01-04"))

        # u3 has features only in the older partition: unknown now.
        unknown = predict(url, "churn", {"entities": ["u1", "u3"]})
        assert unknown.status_code == 404 and "'u3'" in unknown.json()["detail"]

        # A rerun of the latest day (u2 bought something) moves the marker: the next request reads the new run.
        db["user_events"].insert_one({"user_id": "u2", **at(4, 15, event_type="purchase", amount=100.0)})
        publish(mongo, project, definitions, ["2024-01-04"])
        again = predict(url, "churn", {"entities": ["u2", "u1", "u2"]})
        expected = committed("2024-01-04")
        assert expected[0, FEATURES.index("spend")] == 100.0
        assert again.json()["predictions"] == reference_scores(mlflow_resource, logged, expected)

        # A model trained on other feature versions is refused on entities, not silently fed different features.
        stale = register_version(mlflow_resource.tracking_uri, mlflow_resource.artifact_location, project.model.name,
                                 FEATURES, seed=3, trained_features={d.name: {"version": 9, "hash": "other"}
                                                                     for d in definitions})
        promote(mlflow_resource, stale)
        assert admin(url, "churn").status_code == 200
        refused = predict(url, "churn", {"entities": ["u1"]})
        assert refused.status_code == 409 and "trained on version 9" in refused.json()["detail"]
        assert predict(url, "churn", {"rows": as_rows(expected)}).status_code == 200  # rows still work


def test_integer_entity_ids_are_looked_up_as_they_are_stored(project, definitions, mongo, mlflow_resource):
    db = mongo.demo_db("churn")
    db["user_events"].insert_many([{"user_id": 101, **at(4)}, {"user_id": 102, **at(4, event_type="purchase", amount=3.0)}])
    publish(mongo, project, definitions, ["2024-01-04"])
    promote(mlflow_resource, register(project, mlflow_resource, seed=2, definitions=definitions))
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        answer = predict(url, "churn", {"entities": [102, 101]})
        as_text = predict(url, "churn", {"entities": ["101"]})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 2
    # Ids match as MongoDB compares them: the text "101" is not the integer 101.
    assert as_text.status_code == 404 and "'101'" in as_text.json()["detail"]


def test_reload_swaps_atomically_under_concurrent_requests(project, definitions, mongo, mlflow_resource):
    first, second = (register(project, mlflow_resource, seed=seed) for seed in (4, 5))
    X = synthetic_rows(FEATURES, 1, seed=7)
    expected = {v.version: reference_scores(mlflow_resource, v, X)[0] for v in (first, second)}
    assert expected[first.version] != expected[second.version]
    promote(mlflow_resource, first)
    body = json.dumps({"rows": as_rows(X)})
    answers, failures, stop = [], [], threading.Event()

    def hammer():
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                response = http.post(f"{url}/v1/churn/predict", content=body, headers=JSON)
                if response.status_code != 200:
                    failures.append((response.status_code, response.text))
                else:
                    answers.append((response.json()["model"]["version"], response.json()["predictions"][0]))

    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(hammer) for _ in range(4)]
            served = []
            for target in (second, first, second, first, second):
                promote(mlflow_resource, target)
                reloaded = admin(url, "churn")
                assert reloaded.status_code == 200, reloaded.text
                assert reloaded.json()["model"]["version"] == target.version
                served.append(httpx.get(f"{url}/v1/churn/version").json()["version"])
                time.sleep(0.2)
            stop.set()
            for worker in workers:
                worker.result()
    assert not failures
    assert served == [second.version, first.version] * 2 + [second.version]
    assert {version for version, _ in answers} == {first.version, second.version}
    # Every answer came from exactly one model: its score is the one that version gives.
    assert all(score == expected[version] for version, score in answers), "an answer mixed versions"
    assert len(answers) > 50


def test_a_champion_that_cannot_be_loaded_leaves_the_old_one_serving(project, definitions, mongo, mlflow_resource):
    good = register(project, mlflow_resource, seed=6)
    promote(mlflow_resource, good)
    without_artifacts = register(project, mlflow_resource, seed=7)
    client = MlflowClient(tracking_uri=mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri)
    shutil.rmtree(Path(client.get_model_version_download_uri(without_artifacts.name, without_artifacts.version)))
    X = synthetic_rows(FEATURES, 3, seed=1)
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        promote(mlflow_resource, without_artifacts)
        refused = admin(url, "churn")
        assert refused.status_code == 409
        assert f"models:/{good.name}/{without_artifacts.version}" in refused.json()["detail"]
        assert f"still serving version {good.version}" in refused.json()["detail"]
        health = httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]
        assert health["version"] == good.version and "cannot download" in health["last_reload_error"]
        assert httpx.get(f"{url}/v1/churn/version").json()["version"] == good.version
        answer = predict(url, "churn", {"rows": as_rows(X)})
        assert answer.status_code == 200 and answer.json()["model"]["version"] == good.version

        # A serving record naming a version the registry does not have: 409 naming it (MLflow is up), not 502.
        mongo.project_db("churn")["serving_desired"].insert_one({"_id": "champion", "version": "977", "set_at": 1})
        unknown = admin(url, "churn")
        assert unknown.status_code == 409, unknown.text
        assert "version '977' of " in unknown.json()["detail"] and "does not exist" in unknown.json()["detail"]
        mongo.project_db("churn")["serving_desired"].delete_one({"_id": "champion"})

        # No champion at all: the reload says so and the old model still serves.
        client.delete_registered_model_alias(good.name, aliases.CHAMPION)
        gone = admin(url, "churn")
        assert gone.status_code == 409 and "no 'champion' alias" in gone.json()["detail"]
        assert predict(url, "churn", {"rows": as_rows(X)}).json()["model"]["version"] == good.version


def test_predict_needs_the_predict_token_when_one_is_set(project, definitions, mongo, mlflow_resource):
    promote(mlflow_resource, register(project, mlflow_resource, seed=13))
    config = serving_config(project, definitions, mongo, mlflow_resource, predict_token="predict-secret")
    body = {"rows": [ROW]}
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        missing = httpx.post(f"{url}/v1/churn/predict", json=body)
        wrong = httpx.post(f"{url}/v1/churn/predict", json=body, headers={"Authorization": "Bearer nope"})
        right = httpx.post(f"{url}/v1/churn/predict", json=body, headers={"Authorization": "Bearer predict-secret"})
        admin_too = httpx.post(f"{url}/v1/churn/predict", json=body, headers=ADMIN)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert "MINING_PREDICT_TOKEN" in missing.json()["detail"]
    assert wrong.status_code == 403 and right.status_code == 200 and admin_too.status_code == 200


def test_reload_needs_the_admin_token(project, definitions, mongo, mlflow_resource):
    promote(mlflow_resource, register(project, mlflow_resource, seed=8))
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        missing = admin(url, "churn", token=None)
        wrong = admin(url, "churn", token="not-the-token")
        right = admin(url, "churn")
        unknown_project = admin(url, "nope")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403
    assert right.status_code == 200
    assert unknown_project.status_code == 404


def test_health_says_only_up_or_down_without_the_admin_token(project, definitions, mongo, mlflow_resource):
    promote(mlflow_resource, register(project, mlflow_resource, seed=8))
    config = serving_config(project, definitions, mongo, mlflow_resource)
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health").json()["projects"]["churn"]["up"], timeout=30, what="load")
        public = httpx.get(f"{url}/health")
        details = httpx.get(f"{url}/health", headers=ADMIN)
        wrong = httpx.get(f"{url}/health", headers={"Authorization": "Bearer guess"})
    assert public.status_code == 200
    assert public.json()["projects"] == {"churn": {"up": True}}
    assert "prediction_log" not in public.json() and config.tracking_uri not in public.text
    assert details.json()["projects"]["churn"]["version"] and "prediction_log" in details.json()
    assert wrong.status_code == 403 and "version" not in wrong.text


ROW = {"events": 3, "clicks": 1.5, "spend": None}
BAD_BODIES = [
    ("not json", b"{rows: [", 400, "not valid JSON"),
    ("a list", [ROW], 422, "must be an object"),
    ("both keys", {"rows": [ROW], "entities": ["u1"]}, 422, 'exactly one of "rows" or "entities"'),
    ("unknown key", {"rows": [ROW], "debug": True}, 422, "unknown keys: debug"),
    ("rows not a list", {"rows": ROW}, 422, '"rows" must be a list'),
    ("empty", {"rows": []}, 422, '"rows" is empty'),
    ("row not an object", {"rows": [[3, 1, 0]]}, 422, "rows[0] must be an object"),
    ("missing feature", {"rows": [{"events": 3, "clicks": 1}]}, 422, "rows[0]: missing features: spend"),
    ("extra feature", {"rows": [{**ROW, "age": 3}]}, 422, "rows[0]: unknown features: age"),
    ("string value", {"rows": [ROW, {**ROW, "clicks": "2"}]}, 422, "rows[1].clicks: expected a number or null, got '2'"),
    ("bool value", {"rows": [{**ROW, "events": True}]}, 422, "rows[0].events: expected a number"),
    ("nested value", {"rows": [{**ROW, "events": [1]}]}, 422, "rows[0].events"),
    ("NaN", b'{"rows": [{"events": NaN, "clicks": 1, "spend": 2}]}', 422, "NaN is not a JSON number"),
    ("Infinity", b'{"rows": [{"events": 1, "clicks": -Infinity, "spend": 2}]}', 422, "-Infinity is not a JSON number"),
    ("beyond float", b'{"rows": [{"events": 1, "clicks": 1e999, "spend": 2}]}', 422, "rows[0].clicks"),
    ("huge integer", {"rows": [{**ROW, "spend": 10 ** 400}]}, 422, "an integer of 401 digits; at most 40"),
    ("too many rows", {"rows": [ROW] * 11}, 413, "at most 10 per request"),
    ("too many entities", {"entities": ["u"] * 11}, 413, "at most 10 per request"),
    ("entity of a wrong type", {"entities": ["u1", 2.5]}, 422, "entities[1]"),
    ("body too large", {"rows": [{**ROW, "events": 1}], "pad": "x" * 5000}, 413, "at most 4096"),
    # Hostile bodies that once answered 500.
    ("nested far too deep", b'{"rows": ' + b"[" * 1800 + b"]" * 1800 + b"}", 400, "nested too deeply"),
    ("an integer of 3000 digits", b'{"rows": [{"events": ' + b"9" * 3000 + b', "clicks": 1, "spend": 2}]}', 422,
     "an integer of 3000 digits; at most 40"),
    ("an entity id beyond int64", {"entities": ["u1", 2 ** 63]}, 422, "entities[1]: 9223372036854775808 is beyond"),
]


@pytest.mark.parametrize("body, status, message", [case[1:] for case in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
def test_bad_input_gets_a_4xx_naming_the_problem(served_small, body, status, message):
    url = served_small
    response = predict(url, "churn", body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    # The connection stays usable: the next request on it is answered.
    assert predict(url, "churn", {"rows": [ROW]}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}])
def test_only_json_bodies_are_scored(served_small, headers):
    """A cross-origin "simple" POST from any web page (text/plain, a form) must not be scored and logged."""
    response = predict(served_small, "churn", {"rows": [ROW]}, headers=headers)
    assert response.status_code == 415 and "Content-Type: application/json" in response.json()["detail"]
    charset = predict(served_small, "churn", {"rows": [ROW]}, headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 200


@pytest.fixture(scope="module")
def served_small(mongo_uri, mlflow_resource):
    """One endpoint for the bad-input cases: a champion, at most 10 rows and 4 KiB per request."""
    from mining_platform.spec.project import load_project
    from tests.conftest import REPO

    churn = load_project(REPO / "projects" / "churn")
    project = churn.model_copy(update={"model": churn.model.model_copy(update={"name": unique_model_name()})})
    promote(mlflow_resource, register(project, mlflow_resource, seed=9))
    config = ServingConfig(projects=[make_spec(project)], tracking_uri=mlflow_resource.tracking_uri,
                           mongo_uri=mongo_uri, database="bad_input", admin_token=TOKEN, log_sample_rate=0.0,
                           max_batch=10, max_body_bytes=4096, body_timeout_seconds=1.0)
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        yield url


def test_unknown_project_and_no_model_are_not_server_errors(project, definitions, mongo, mlflow_resource, served_small):
    assert predict(served_small, "nope", {"rows": [ROW]}).status_code == 404
    assert httpx.get(f"{served_small}/v1/nope/version").status_code == 404
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["status"] != "loading",
                   timeout=30, what="the start-up load")
        health = httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]
        answer = predict(url, "churn", {"rows": [ROW]})
        version = httpx.get(f"{url}/v1/churn/version")
    assert health["version"] is None and "no 'champion' alias" in health["status"]
    assert answer.status_code == 503 and "serves no model yet" in answer.json()["detail"]
    assert version.status_code == 503


def test_sampled_predictions_are_logged_in_batches(project, definitions, mongo, mlflow_resource):
    logged = register(project, mlflow_resource, seed=10)
    promote(mlflow_resource, logged)
    X = synthetic_rows(FEATURES, 3, seed=2)
    config = serving_config(project, definitions, mongo, mlflow_resource, log_sample_rate=1.0)
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        scores = [predict(url, "churn", {"rows": as_rows(X)}).json()["predictions"] for _ in range(4)]
        assert predict(url, "churn", {"rows": [{"events": 3, "clicks": 1, "spend": None}]}).status_code == 200
        wait_until(lambda: mongo.endpoint_db("churn")["prediction_log"].count_documents({}) == 13, timeout=10, what="13 log records")
        stats = httpx.get(f"{url}/health", headers=ADMIN).json()["prediction_log"]
    docs = list(mongo.endpoint_db("churn")["prediction_log"].find({}, {"_id": 0}).sort("time", 1))
    assert stats["written"] == 13 and stats["dropped"] == {}
    # Logged as the model saw them: floats, missing as null, whatever JSON type was sent.
    assert docs[-1]["features"] == {"events": 3.0, "clicks": 1.0, "spend": None}
    assert all(type(v) is float for v in docs[-1]["features"].values() if v is not None)
    assert {d["project"] for d in docs} == {"churn"}
    assert all(d["model"] == {"name": logged.name, "version": logged.version} for d in docs)
    assert [d["score"] for d in docs[:3]] == scores[0]
    assert docs[0]["features"] == as_rows(X)[0] and isinstance(docs[0]["time"], dt.datetime)


def test_the_prediction_log_is_bounded_in_time_and_per_request(project, definitions, mongo, mlflow_resource):
    """Large requests cannot fill the log or outweigh the others: at most `log_max_rows` rows of a request are
    logged (a random subset, the same rows for every model), and a TTL index removes records after the retention."""
    promote(mlflow_resource, register(project, mlflow_resource, seed=12))
    X = synthetic_rows(FEATURES, 50, seed=4)
    config = serving_config(project, definitions, mongo, mlflow_resource, log_sample_rate=1.0, log_max_rows=7,
                            log_retention_days=2.0)
    log = mongo.endpoint_db("churn")["prediction_log"]
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        for _ in range(3):
            assert predict(url, "churn", {"rows": as_rows(X)}).status_code == 200
        wait_until(lambda: log.count_documents({}) == 21, timeout=10, what="3 x 7 log records")
        stats = httpx.get(f"{url}/health", headers=ADMIN).json()["prediction_log"]
    assert stats["capped"] == 3 * 43 and stats["max_rows_per_request"] == 7 and stats["retention_days"] == 2.0
    ttl = {i["name"]: i.get("expireAfterSeconds") for i in log.list_indexes()}
    assert ttl["time_1"] == 2 * 86400
    # Another retention at the next start changes the index in place.
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource,
                                                           log_sample_rate=1.0, log_retention_days=5.0))):
        wait_until(lambda: {i["name"]: i.get("expireAfterSeconds") for i in log.list_indexes()}["time_1"] == 5 * 86400,
                   timeout=10, what="the retention changed")
    with pytest.raises(ValueError, match="MINING_PREDICTION_LOG_RETENTION_DAYS"):
        serving_config(project, definitions, mongo, mlflow_resource, log_retention_days=float("nan"))


def test_requests_succeed_and_drops_are_counted_when_mongodb_is_down(project, definitions, mlflow_resource):
    promote(mlflow_resource, register(project, mlflow_resource, seed=11))
    dead = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    config = ServingConfig(projects=[make_spec(project, definitions)], tracking_uri=mlflow_resource.tracking_uri,
                           mongo_uri=dead, database="nowhere", admin_token=TOKEN, log_sample_rate=1.0,
                           mongo_timeout_ms=300)
    X = synthetic_rows(FEATURES, 2, seed=3)
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["version"], timeout=30, what="load")
        started = time.perf_counter()
        answers = [predict(url, "churn", {"rows": as_rows(X)}) for _ in range(5)]
        elapsed = time.perf_counter() - started
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["prediction_log"]["dropped"], timeout=10, what="a drop")
        stats = httpx.get(f"{url}/health", headers=ADMIN).json()["prediction_log"]
        lookup = predict(url, "churn", {"entities": ["u1"]})
    assert all(a.status_code == 200 for a in answers)
    assert elapsed < 2.0, "requests waited for the log"
    assert stats["written"] == 0 and sum(stats["dropped"].values()) >= 2
    assert "ServerSelectionTimeoutError" in stats["last_error"]
    assert lookup.status_code == 503 and "rows can still be scored" in lookup.json()["detail"]


def test_the_docs_page_works_without_internet(served_small):
    """Swagger UI and ReDoc come from the endpoint itself, not a CDN. (The bundle is about 1.5 MB: a loaded
    machine can take longer than httpx's 5 s default to serve it.)"""
    for page in ("docs", "redoc"):
        html = httpx.get(f"{served_small}/{page}", timeout=60).text
        assert "cdn." not in html and "/docs-static/" in html
    assert "url: '/openapi.json'" in httpx.get(f"{served_small}/docs", timeout=60).text
    script = httpx.get(f"{served_small}/docs-static/swagger-ui-bundle.js", timeout=60)
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert httpx.get(f"{served_small}/docs-static/swagger-ui.css", timeout=60).status_code == 200


def test_a_body_that_trickles_in_is_cut_off_with_408(served_small):
    """A client that never finishes its body cannot hold the connection: 408 after the body timeout, then close."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(served_small)
    with socket.create_connection((address.hostname, address.port), timeout=15) as slow:
        slow.sendall(b"POST /v1/churn/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"rows\": ")
        answer = b""
        while chunk := slow.recv(65536):  # the server answers, then closes
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 408 " in status_line and b"the body did not arrive within 1 s (9 bytes so far)" in rest
    assert predict(served_small, "churn", {"rows": [ROW]}).status_code == 200



def test_the_endpoint_imports_mlflow_only_under_one_lock():
    """Replicas started together stayed "loading" for good: the first loads of every project and role ran at once in
    worker threads, each importing MLflow, and concurrent first imports of MLflow deadlock or see a partially
    initialised module (AttributeError: partially initialized module 'mlflow' has no attribute 'version'), which
    also ended the replica's loops. Every import of MLflow or the registry in the endpoint goes through
    `served_model._registry`, which holds a lock."""
    import ast
    import inspect

    from mining_platform import serving
    from mining_platform.serving import served_model

    found = []
    for path in Path(serving.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(n.split(".")[0] == "mlflow" or n.startswith("mining_platform.registry") for n in names):
                    found.append(f"{path.name}:{node.lineno}")
    source = inspect.getsource(served_model._registry)
    lines = {f"served_model.py:{served_model._registry.__code__.co_firstlineno + i}"
             for i, text in enumerate(source.splitlines()) if "import" in text}
    assert found and set(found) <= lines, set(found) - lines
    assert "with _REGISTRY_IMPORT:" in source
