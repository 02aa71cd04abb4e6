"""Bring your own data: a purchase log shaped unlike the demo (integer ids, another time field, dates as
text), imported from a file, scaffolded with `new`, featured, labelled and trained through Dagster,
with no materialisation or observation of the source, and nothing written into it."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.features import build_feature_asset
from assets.model import build_model_asset
from assets.samples import build_samples_asset
from mining_platform.spec import load_spec
from mining_platform.tools import cli
from sensors.definitions import project_definitions
from tests.conftest import REPO

UTC = dt.timezone.utc
START = dt.date(2024, 3, 1)


def purchase_log() -> tuple[Path, int]:
    """The README's example file: orders of 200 customers over 150 days from 2024-03-01, integer ids, the time
    in `ordered_at` as "DD/MM/YYYY HH:MM" text (examples/make_orders.py writes it)."""
    path = REPO / "examples" / "orders.csv"
    return path, sum(1 for _ in path.open()) - 1


def fingerprint(collection) -> str:
    return hashlib.sha256(json.dumps(list(collection.find({}, sort=[("_id", 1)])), default=str).encode()).hexdigest()


@pytest.fixture
def shop(tmp_path, mongo, monkeypatch):
    """A projects folder, MongoDB settings for the CLI, and an empty workspace file."""
    projects = tmp_path / "projects"
    projects.mkdir()
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n")
    return projects, workspace


def new_project(name, task, projects, workspace, capsys):
    code = cli.main(["new", name, "--source", "orders", "--entity", "customer", "--timestamp", "ordered_at",
                     "--task", task, "--start-date", START.isoformat(), "--workspace", str(workspace)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"added code location {name}" in out
    # The team shortens the starter label's horizon to a week, as a user would edit the file.
    [label_file] = (projects / name / "labels").glob("*.yaml")
    label = yaml.safe_load(label_file.read_text())
    label["horizon_days"] = 7
    label_file.write_text(yaml.safe_dump(label, sort_keys=False))
    return load_spec(projects / name)


def build_all(spec, mongo, mlflow_resource, *, samples_from, samples_to):
    assets = [build_feature_asset(spec.project, spec.definitions[0]), build_samples_asset(spec)]
    instance = dg.DagsterInstance.ephemeral()
    resources = {"mongo": mongo, "mlflow": mlflow_resource}
    features = dg.materialize(assets[:1], resources=resources, instance=instance, tags={
        "dagster/asset_partition_range_start": (samples_from - dt.timedelta(days=1)).isoformat(),
        "dagster/asset_partition_range_end": samples_to.isoformat()})
    assert features.success
    samples = dg.materialize(assets[1:], resources=resources, instance=instance, tags={
        "dagster/asset_partition_range_start": samples_from.isoformat(),
        "dagster/asset_partition_range_end": samples_to.isoformat()})
    assert samples.success
    model = dg.materialize([build_model_asset(spec)], resources=resources,
                           instance=instance, raise_on_error=False, run_config={"ops": {f"{spec.name}__model": {"config": {
                               "validation_days": 3, "embargo_days": 7}}}})
    # No source was materialised or observed: maturity came from the data.
    for key in (dg.AssetKey([spec.name, "sources", "orders"]),):
        assert not instance.fetch_materializations(key, limit=1).records
        assert not instance.fetch_observations(key, limit=1).records
    return model


@pytest.mark.parametrize(("task", "metric"), [("binary", "auc"), ("regression", "r2")])
def test_a_purchase_log_from_a_file_to_a_gated_model(shop, mongo, mlflow_resource, tmp_path, capsys, task, metric):
    projects, workspace = shop
    name = f"shop_{task}"
    spec = new_project(name, task, projects, workspace, capsys)
    assert yaml.safe_load(workspace.read_text())["load_from"][0]["python_module"]["attribute"] == name

    log, rows = purchase_log()
    code = cli.main(["import", str(log), "--project", name, "--source", "events",
                     "--timestamp-format", "%d/%m/%Y %H:%M"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"imported {rows} rows" in out and f"{rows} new, 0 already there" in out
    orders = mongo.db()["orders"]
    first = orders.find_one(sort=[("ordered_at", 1)])
    assert isinstance(first["customer"], int) and first["ordered_at"].tzinfo is not None
    before = fingerprint(orders)

    # Samples T = 04-05 .. 04-20 (features see 30 days; labels the week after T, up to 04-27 < 04-30).
    model = build_all(spec, mongo, mlflow_resource, samples_from=dt.date(2024, 4, 5), samples_to=dt.date(2024, 4, 20))
    assert fingerprint(orders) == before, "the platform wrote into the source"
    assert model.success, model.get_step_failure_events()
    [materialization] = model.asset_materializations_for_node(f"{name}__model")
    metadata = materialization.metadata
    [gate] = model.get_asset_check_evaluations()
    assert gate.passed, gate.description
    assert metadata[metric].value > (0.6 if task == "binary" else 0.0)
    version = metadata["model_version"].value
    from mlflow import MlflowClient

    tags = MlflowClient(mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri) \
        .get_model_version(spec.project.model.name, version).tags
    assert tags["mining.task"] == task and tags["mining.gate"] == "passed"
    assert json.loads(tags["mining.label"])["name"] == spec.label


def test_a_late_day_is_refused_until_its_events_arrive(shop, mongo, mlflow_resource, tmp_path, capsys):
    projects, workspace = shop
    spec = new_project("late", "binary", projects, workspace, capsys)
    log, _ = purchase_log()
    assert cli.main(["import", str(log), "--project", "late", "--source", "events",
                     "--timestamp-format", "%d/%m/%Y %H:%M"]) == 0
    orders = mongo.db()["orders"]
    # The last two days have not arrived yet.
    held_back = list(orders.find({"ordered_at": {"$gte": dt.datetime(2024, 4, 28, tzinfo=UTC)}}))
    orders.delete_many({"_id": {"$in": [d["_id"] for d in held_back]}})
    resources = {"mongo": mongo, "mlflow": mlflow_resource}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([build_feature_asset(spec.project, spec.definitions[0])],
                          resources=resources, instance=instance, partition_key="2024-04-20").success
    samples = build_samples_asset(spec)
    refused = dg.materialize([samples], resources=resources, instance=instance, partition_key="2024-04-20",
                             raise_on_error=False)
    assert not refused.success
    message = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "label window [2024-04-21, 2024-04-28) has not fully elapsed in source events (" in message
    assert "at or after 2024-04-28T00:00:00+00:00" in message
    orders.insert_many(held_back)
    assert dg.materialize([samples], resources=resources, instance=instance, partition_key="2024-04-20").success


def test_an_observation_records_each_changed_day_once(shop, mongo, tmp_path, capsys):
    projects, workspace = shop
    spec = new_project("watch", "binary", projects, workspace, capsys)
    orders = mongo.db()["orders"]
    orders.insert_many([
        {"customer": 1, "ordered_at": dt.datetime(2024, 3, 1, 10, tzinfo=UTC)},
        {"customer": 2, "ordered_at": dt.datetime(2024, 3, 1, 11, tzinfo=UTC)},
        {"customer": 1, "ordered_at": dt.datetime(2024, 3, 3, 9, tzinfo=UTC)},
    ])
    # The project's own observation job (what its schedule runs), bound to the platform's resources.
    job = project_definitions(spec).resolve_job_def("watch_observe_sources_job")
    source = dg.AssetKey(["watch", "sources", "events"])
    instance = dg.DagsterInstance.ephemeral()

    def observe() -> dict[str, str]:
        before = {r.storage_id for r in instance.fetch_observations(source, limit=1000).records}
        assert job.execute_in_process(instance=instance).success
        return {r.partition_key: r.asset_observation.data_version
                for r in instance.fetch_observations(source, limit=1000).records if r.storage_id not in before}

    first = observe()
    assert first == {"2024-03-01": "2 events, newest 2024-03-01T11:00:00+00:00",
                     "2024-03-03": "1 events, newest 2024-03-03T09:00:00+00:00"}
    assert observe() == {}  # nothing changed: nothing recorded
    orders.insert_one({"customer": 3, "ordered_at": dt.datetime(2024, 3, 3, 8, tzinfo=UTC)})
    assert observe() == {"2024-03-03": "2 events, newest 2024-03-03T09:00:00+00:00"}
    orders.delete_many({"ordered_at": {"$lt": dt.datetime(2024, 3, 2, tzinfo=UTC)}})
    assert observe() == {"2024-03-01": "0 events"}
    assert orders.count_documents({}) == 2  # observing never writes


def test_a_historical_file_gets_partitions_that_end_where_its_events_end(shop, mongo, capsys):
    from mining_platform.spec.project import load_project

    projects, workspace = shop
    new_project("history", "binary", projects, workspace, capsys)  # the collection is empty: no end_date yet
    assert load_project(projects / "history").end_date is None
    log, _ = purchase_log()  # 2024-03-01 .. 2024-07-28, years before today
    arguments = ["import", str(log), "--project", "history", "--source", "events", "--timestamp-format",
                 "%d/%m/%Y %H:%M"]
    assert cli.main(arguments) == 0
    out, err = capsys.readouterr()
    assert 'for a historical file add `end_date: "2024-07-27"`' in out and "--set-end-date" in out
    assert "orders.csv: 7,098 rows in" in err  # the progress lines
    assert load_project(projects / "history").end_date is None  # proposed, not written
    assert cli.main([*arguments, "--set-end-date"]) == 0
    out, _ = capsys.readouterr()
    assert "0 new" in out and 'set end_date: "2024-07-27"' in out
    assert load_project(projects / "history").end_date == dt.date(2024, 7, 27)
    # `new` over the loaded collection finds both ends itself.
    assert cli.main(["new", "again", "--source", "orders", "--entity", "customer", "--timestamp", "ordered_at",
                     "--workspace", str(workspace)]) == 0
    out, _ = capsys.readouterr()
    assert "end_date 2024-07-27: the newest event is from 2024-07-28" in out
    again = load_project(projects / "again")
    assert (again.start_date, again.end_date, again.automation.follow_days) == (START, dt.date(2024, 7, 27), 3)
    assert cli.main(["new", "live", "--source", "orders", "--entity", "customer", "--timestamp", "ordered_at",
                     "--end-date", "none", "--workspace", str(workspace)]) == 0
    assert load_project(projects / "live").end_date is None
