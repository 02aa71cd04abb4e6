"""`<p>/predictions`, `<p>/performance` and `<p>_performance_sensor`.

Feature days are committed with known values (the same audit and commit path as a
pipeline run), the label source holds events that decide who churned, and two small
registered versions are champion and challenger. Realised metrics are checked against
pandas and scikit-learn on the same rows, with the labels recomputed from the events.
"""

import copy
import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from assets.performance import build_performance_asset
from assets.predictions import build_predictions_asset
from mining_platform.demo.store import ensure_event_indexes
from mining_platform.monitoring.realised import Group, HitRate, PerformanceDay
from mining_platform.registry import aliases
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import PREDICTION_LOG
from mining_platform.tasks import BINARY
from mining_platform.tasks.judge import compare, realised
from sensors.definitions import project_definitions
from tests.fixtures.definitions import COUNTS, SPEND
from tests.fixtures.feature_days import publish_feature_day
from tests.fixtures.model_versions import register_synthetic_version, synthetic_rows, unique_model_name
from tests.fixtures.scored import scored
from tests.fixtures.specs import churn_label, make_spec

UTC = dt.timezone.utc
FEATURES = ["events", "clicks", "spend"]
DAYS = ["2024-01-10", "2024-01-11"]
ENTITIES = 200
HORIZON = 3


def as_of(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=UTC) + dt.timedelta(days=1)


@pytest.fixture
def spec(churn_project):
    project = churn_project.model_copy(update={
        "model": churn_project.model.model_copy(update={"name": unique_model_name()}),
        "performance": churn_project.performance.model_copy(update={"min_days": 2}),
    })
    definitions = (FeatureDefinition.model_validate(copy.deepcopy(COUNTS)),
                   FeatureDefinition.model_validate(copy.deepcopy(SPEND)))
    return make_spec(project, definitions, churn_label(horizon_days=HORIZON))


def register(spec, mlflow_resource, seed: int, gate: str = aliases.PASSED):
    return register_synthetic_version(
        tracking_uri=mlflow_resource.tracking_uri, artifact_location=mlflow_resource.artifact_location,
        model_name=spec.project.model.name, features=FEATURES, seed=seed, project=spec.name, gate=gate)


def set_alias(mlflow_resource, logged, alias: str) -> None:
    MlflowClient(tracking_uri=mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri) \
        .set_registered_model_alias(logged.name, alias, logged.version)


@pytest.fixture
def world(spec, mongo):
    """Two committed feature days of 200 entities, and events that decide who churned: an entity stays active
    (one event in the label windows) unless its `events` feature is high; one late event moves the watermark."""
    X = synthetic_rows(FEATURES, ENTITIES, seed=21)
    for day in DAYS:
        publish_feature_day(mongo.project_db(spec.name), spec, partition=day, as_of=as_of(day),
                            columns={f: X[:, i] for i, f in enumerate(FEATURES)})
    rng = np.random.default_rng(22)
    churned = np.nan_to_num(X[:, 0], nan=6.0) + rng.normal(0, 3, ENTITIES) > 6
    events = mongo.demo_db("churn")["user_events"]
    ensure_event_indexes(events, entity_field="user_id")
    events.insert_many([{"user_id": f"u{i:07d}", "timestamp": dt.datetime(2024, 1, 12, 12, tzinfo=UTC),
                         "event_type": "click"} for i in range(ENTITIES) if not churned[i]]
                       + [{"user_id": "late", "timestamp": dt.datetime(2024, 1, 20, 12, tzinfo=UTC),
                           "event_type": "click"}])
    return X


def materialize(assets, spec, mongo, mlflow_resource, instance, day):
    return dg.materialize(assets, partition_key=day, instance=instance, raise_on_error=False,
                          resources={"mongo": mongo, "mlflow": mlflow_resource})


def failure(result) -> str:
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data.description


def metadata(result) -> dict:
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def churn_labels(mongo, day: str) -> dict[str, int]:
    """The churn label recomputed with pandas from the raw events: 1 when no event in [as_of, as_of + horizon)."""
    events = pd.DataFrame(list(mongo.demo_db("churn")["user_events"].find({}, {"_id": 0, "user_id": 1, "timestamp": 1})))
    start = as_of(day)
    times = pd.to_datetime(events.timestamp, utc=True)
    active = set(events[(times >= start) & (times < start + dt.timedelta(days=HORIZON))].user_id)
    return {f"u{i:07d}": int(f"u{i:07d}" not in active) for i in range(ENTITIES)}


def test_every_committed_day_is_scored_by_champion_and_challenger_and_judged_once_labels_mature(
        spec, world, mongo, mlflow_resource):
    champion, challenger = register(spec, mlflow_resource, 1), register(spec, mlflow_resource, 2)
    set_alias(mlflow_resource, champion, aliases.CHAMPION)
    set_alias(mlflow_resource, challenger, aliases.CHALLENGER)
    predictions, performance = build_predictions_asset(spec), build_performance_asset(spec)
    db = mongo.project_db(spec.name)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=[spec.name, "deployment"], metadata={"live_version": champion.version,
                                                           "challenger_version": challenger.version}))
        for day in DAYS:
            result = materialize([predictions], spec, mongo, mlflow_resource, instance, day)
            assert result.success, failure(result)
        scored_meta = metadata(result)
        rerun = materialize([predictions], spec, mongo, mlflow_resource, instance, DAYS[0])
        assert rerun.success

        # The endpoint's log: entity predictions made from day 1's features, one of them by a stale version.
        logged_at = dt.datetime.now(UTC)
        mongo.endpoint_db(spec.name)[PREDICTION_LOG].insert_many([
            {"project": spec.name, "model": {"name": champion.name, "version": champion.version if i < 20 else "999"},
             "role": "champion", "answered": True, "time": logged_at, "score": 0.5, "features": {},
             "entity": f"u{i:07d}", "as_of": as_of(DAYS[0])} for i in range(21)])
        judged = materialize([performance], spec, mongo, mlflow_resource, instance, DAYS[0])
        assert judged.success, failure(judged)
        report = metadata(judged)

        immature = materialize([performance], spec, mongo, mlflow_resource, instance, "2024-01-19")
        unscored = materialize([predictions], spec, mongo, mlflow_resource, instance, "2024-01-05")

    # Predictions: every entity, both roles, the committed run's documents only, scored as the model scores.
    marker = db["prediction_partitions"].find_one({"name": f"{spec.name}/predictions", "as_of": as_of(DAYS[0])})
    docs = pd.DataFrame(list(db[f"predictions_{spec.name}"].find({"as_of": as_of(DAYS[0]), "run_id": marker["run_id"]},
                                                                  {"_id": 0})))
    assert len(docs) == 2 * ENTITIES and set(docs.role) == {"champion", "challenger"}
    assert marker["models"]["champion"]["version"] == champion.version
    assert marker["models"]["challenger"]["version"] == challenger.version
    assert scored_meta["champion_version"] == champion.version and scored_meta["dagster/row_count"] == 2 * ENTITIES
    from tests.fixtures.serving import reference_scores
    expected = reference_scores(mlflow_resource, champion, world)
    mine = docs[docs.role == "champion"].set_index("user_id").loc[[f"u{i:07d}" for i in range(ENTITIES)]]
    assert mine.score.tolist() == pytest.approx(expected, abs=1e-6)
    assert (mine.model.map(lambda m: m["version"]) == champion.version).all()

    # Realised AUC of each version: the same as scikit-learn on the same rows with labels from pandas.
    labels = churn_labels(mongo, DAYS[0])
    evidence = report["evidence"]
    for role, version in (("champion", champion.version), ("challenger", challenger.version)):
        rows = docs[docs.role == role]
        y = rows.user_id.map(labels)
        assert evidence[role]["version"] == version and evidence[role]["rows"] == ENTITIES
        assert evidence[role]["value"] == pytest.approx(roc_auc_score(y, rows.score), abs=1e-9)
        assert report[f"{role}_auc"] == pytest.approx(roc_auc_score(y, rows.score), abs=1e-6)
    pivot = docs.pivot(index="user_id", columns="role", values="score")
    y = pivot.index.map(labels)
    assert evidence["difference"]["estimate"] == pytest.approx(
        roc_auc_score(y, pivot.challenger) - roc_auc_score(y, pivot.champion), abs=1e-6)
    table = [r.data for r in report["metrics"].records]
    logged = [r for r in table if r["source"] == "logged" and r["metric"] == "logloss"
              and r["version"] == champion.version]
    assert logged and logged[0]["rows"] == 20 and logged[0]["version"] == champion.version
    assert report["logged_predictions"] == 21 and report["version_hit_rate"] == pytest.approx(20 / 21)
    assert report["version_misses"] == {f"served v999 as champion, expected v{champion.version}": 1}
    assert "plot_calibration" in report

    assert not immature.success and "has not fully elapsed" in failure(immature)
    assert not unscored.success and "no committed features" in failure(unscored)


# --- <p>_performance_sensor ------------------------------------------------------------------------


def evidence(spec, day: str, champion: str, challenger: str | None, *, seed: int, challenger_better: bool | None,
             strength: float = 1.5) -> dict:
    """A day's evidence as `<p>/performance` records it, computed from synthetic labels and scores."""
    y, good, weak = scored(1500, seed, strength=strength)
    champion_scores, challenger_scores = (weak, good) if challenger_better else (good, weak)
    groups = [Group("batch", "champion", champion, realised(BINARY, y, champion_scores, confidence=0.95))]
    comparison = None
    if challenger is not None:
        groups.append(Group("batch", "challenger", challenger,
                            realised(BINARY, y, challenger_scores, confidence=0.95)))
        comparison = compare(BINARY, "auc", y, champion_scores, challenger_scores, confidence=0.95)
    models = {"champion": champion, **({"challenger": challenger} if challenger else {})}
    return PerformanceDay(partition=day, labelled=len(y), groups=groups, comparison=comparison, compared_on="auc",
                          hit_rate=HitRate(0, 0), models=models).evidence(spec)


def report(instance, spec, day: str, found: dict) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=[spec.name, "performance"], partition=day, metadata={"evidence": dg.MetadataValue.json(found)}))


def tick(spec, instance, mlflow_resource, mongo, cursor=None):
    definitions = project_definitions(spec)
    sensor = definitions.resolve_sensor_def(f"{spec.name}_performance_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions,
                                      resources={"mlflow": mlflow_resource, "mongo": mongo})
    return sensor.evaluate_tick(context)


def test_the_sensor_promotes_a_challenger_that_beat_the_champion_on_every_day(spec, mongo, mlflow_resource):
    champion, challenger = register(spec, mlflow_resource, 1), register(spec, mlflow_resource, 2)
    set_alias(mlflow_resource, champion, aliases.CHAMPION)
    set_alias(mlflow_resource, challenger, aliases.CHALLENGER)
    with dg.instance_for_test() as instance:
        report(instance, spec, "2024-01-10", evidence(spec, "2024-01-10", champion.version, challenger.version, seed=1,
                                                      challenger_better=True))
        waiting = tick(spec, instance, mlflow_resource, mongo)
        assert not waiting.run_requests and "1 of 2 matured days compare" in waiting.skip_message
        report(instance, spec, "2024-01-11", evidence(spec, "2024-01-11", champion.version, challenger.version, seed=2,
                                                      challenger_better=True))
        [promote] = tick(spec, instance, mlflow_resource, mongo, waiting.cursor).run_requests
        assert promote.job_name == f"{spec.name}_deploy_job"
        assert promote.run_config == {"ops": {f"{spec.name}__deployment": {"config": {"version": challenger.version}}}}
        assert promote.run_key == f"performance:{spec.name}:promote:{challenger.version}:2024-01-11"
        assert promote.tags["mining.cause"] == "performance"
        assert promote.tags["mining.performance.decision"] == "promote"
        assert promote.tags["mining.performance.days"] == "2024-01-10,2024-01-11"
        low = float(promote.tags["mining.performance.interval"].strip("[]").split(",")[0])
        assert low > 0 and float(promote.tags["mining.performance.difference"]) > low
        # Evaluated again before the run lands: the same key (Dagster launches it once).
        [again] = tick(spec, instance, mlflow_resource, mongo, waiting.cursor).run_requests
        assert again.run_key == promote.run_key


def test_the_sensor_retires_a_worse_challenger_and_waits_on_a_mixed_one(spec, mongo, mlflow_resource):
    champion, challenger = register(spec, mlflow_resource, 3), register(spec, mlflow_resource, 4)
    set_alias(mlflow_resource, champion, aliases.CHAMPION)
    set_alias(mlflow_resource, challenger, aliases.CHALLENGER)
    with dg.instance_for_test() as instance:
        report(instance, spec, "2024-01-10", evidence(spec, "2024-01-10", champion.version, challenger.version, seed=5,
                                                      challenger_better=True))
        report(instance, spec, "2024-01-11", evidence(spec, "2024-01-11", champion.version, challenger.version, seed=6,
                                                      challenger_better=False))
        mixed = tick(spec, instance, mlflow_resource, mongo)
        assert not mixed.run_requests and "no clear difference" in mixed.skip_message
        report(instance, spec, "2024-01-12", evidence(spec, "2024-01-12", champion.version, challenger.version, seed=7,
                                                      challenger_better=False))
        [retire] = tick(spec, instance, mlflow_resource, mongo, mixed.cursor).run_requests
        assert retire.run_config == {"ops": {f"{spec.name}__deployment": {
            "config": {"role": "challenger", "retire": True}}}}
        assert retire.run_key == f"performance:{spec.name}:retire:{challenger.version}:2024-01-12"
        assert retire.tags["mining.performance.decision"] == "retire"


def test_the_sensor_retrains_when_the_champion_falls_below_the_floor(spec, mongo, mlflow_resource):
    champion = register(spec, mlflow_resource, 5)
    set_alias(mlflow_resource, champion, aliases.CHAMPION)
    with dg.instance_for_test() as instance:
        # AUC about 0.6: below the gate's floor of 0.70 on both days.
        for seed, day in ((8, "2024-01-10"), (9, "2024-01-11")):
            found = evidence(spec, day, champion.version, None, seed=seed, challenger_better=None, strength=0.35)
            assert found["champion"]["value"] < spec.project.model.gate.min
            report(instance, spec, day, found)
        [retrain] = tick(spec, instance, mlflow_resource, mongo).run_requests
        assert retrain.job_name == f"{spec.name}_retrain_job"
        assert retrain.run_key == f"performance:{spec.name}:retrain:{champion.version}:2024-01-11"
        assert retrain.tags["mining.cause"] == "performance" and retrain.tags["mining.performance.metric"] == "auc"
        assert dg.AssetKey([spec.name, "model"]) in retrain.asset_selection

        # A good day in between: no retrain.
        report(instance, spec, "2024-01-12", evidence(spec, "2024-01-12", champion.version, None, seed=10,
                                                      challenger_better=None, strength=2.0))
        fine = tick(spec, instance, mlflow_resource, mongo)
        assert not fine.run_requests and "within the gate's min 0.7" in fine.skip_message


def test_the_sensor_requests_reports_for_the_newest_predicted_days_whose_labels_matured(spec, world, mongo,
                                                                                        mlflow_resource):
    champion = register(spec, mlflow_resource, 6)
    set_alias(mlflow_resource, champion, aliases.CHAMPION)
    older = [f"2024-01-0{d}" for d in range(1, 9)]
    with dg.instance_for_test() as instance:
        # Day 01-18's window [01-19, 01-22) has not elapsed: the newest event is on 01-20. Of the ten matured days
        # the sensor keeps the newest seven reported (01-04 .. 01-11), five per tick, oldest first.
        for day in (*older, *DAYS, "2024-01-18"):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=[spec.name, "predictions"],
                                                                        partition=day))
        first = tick(spec, instance, mlflow_resource, mongo)
        assert {(r.partition_key, r.job_name) for r in first.run_requests} == {
            (day, f"{spec.name}_performance_job") for day in older[3:]}
        for day in older[3:]:
            report(instance, spec, day, evidence(spec, day, champion.version, None, seed=11, challenger_better=None))
        second = tick(spec, instance, mlflow_resource, mongo, first.cursor)
        assert {r.partition_key for r in second.run_requests} == set(DAYS)
        # Predictions scored again for a day: its report is due again.
        for day in DAYS:
            report(instance, spec, day, evidence(spec, day, champion.version, None, seed=12, challenger_better=None))
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=[spec.name, "predictions"],
                                                                    partition=DAYS[0]))
        third = tick(spec, instance, mlflow_resource, mongo, second.cursor)
        assert {r.partition_key for r in third.run_requests} == {DAYS[0]}
