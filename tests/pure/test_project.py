"""project.yaml: loading, and errors that name the file and the key."""

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from mining_platform.spec.project import ProjectConfigError, load_project, project_names
from tests.conftest import REPO

pytestmark = pytest.mark.fast


def write_project(root: Path, name: str, config: dict | str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    (folder / "project.yaml").write_text(text)
    return folder


@pytest.fixture
def churn_raw() -> dict:
    return yaml.safe_load((REPO / "projects" / "churn" / "project.yaml").read_text())


def test_churn_project_loads_as_designed(churn_project):
    assert churn_project.name == "churn"
    assert churn_project.entity == "user_id"
    assert churn_project.sources["user_events"].collection == "user_events"
    assert churn_project.sources["user_events"].timestamp == "timestamp"
    assert churn_project.start_date == dt.date(2024, 1, 1)
    assert churn_project.label == "churned"
    assert churn_project.model.name == "churn_xgb"
    assert churn_project.model.task == "binary"
    assert (churn_project.model.gate.metric, churn_project.model.gate.min) == ("auc", 0.70)
    assert churn_project.demo.source == "user_events"
    assert churn_project.model.params["n_estimators"] == 300
    assert churn_project.drift.min_drifted_features == 2


def test_demo_section_is_optional_and_names_a_source(tmp_path, churn_raw):
    del churn_raw["demo"]
    assert load_project(write_project(tmp_path, "plain", {**churn_raw, "name": "plain"})).demo is None
    churn_raw["demo"] = {"source": "clicks"}
    with pytest.raises(ProjectConfigError, match="demo.source 'clicks' is not a key of sources"):
        load_project(write_project(tmp_path, "churn", churn_raw))


def test_a_demo_source_lives_in_its_projects_demo_database(tmp_path, churn_raw, monkeypatch):
    """The generator's one writable database holds nothing but its events: the platform places the demo source
    there (`demo_of` its own project); other projects read it by `demo_of`, never by naming the database."""
    monkeypatch.delenv("MINING_MONGO_DB", raising=False)
    churn = load_project(write_project(tmp_path, "churn", churn_raw))
    assert churn.sources["user_events"].demo_of == "churn"
    assert churn.sources["user_events"].database_name("mining") == "mining_churn-demo"
    spend = load_project(REPO / "projects" / "spend")
    assert spend.sources["app_events"].database_name("team") == "team_churn-demo"
    for i, (source, problem) in enumerate([({"database": "events"}, "the demo generator writes only this project's demo database"),
                            ({"demo_of": "spend"}, "the demo generator writes only this project's demo database"),
                            ({"demo_of": "spend", "database": "events"}, "set database or demo_of, not both"),
                            ({"demo_of": "Spend"}, "demo_of")]):
        raw = {**churn_raw, "sources": {"user_events": {**churn_raw["sources"]["user_events"], **source}}}
        with pytest.raises(ProjectConfigError, match=problem):
            load_project(write_project(tmp_path / str(i), "churn", raw))
    # What a source may not name directly: a demo database is reached by demo_of only.
    raw = {**churn_raw, "demo": None,
           "sources": {"user_events": {**churn_raw["sources"]["user_events"], "database": "mining_spend-demo"}}}
    with pytest.raises(ProjectConfigError, match="named like a project's namespace"):
        load_project(write_project(tmp_path / "direct", "churn", raw))


def test_moved_keys_say_where_they_went(tmp_path, churn_raw):
    old = {**churn_raw, "events": "user_events", "label": {"name": "churned", "horizon_days": 14}}
    old["model"] = {**churn_raw["model"], "min_auc": 0.7}
    with pytest.raises(ProjectConfigError) as error:
        load_project(write_project(tmp_path, "churn", old))
    assert "`events` is replaced by `sources`" in str(error.value)
    del old["events"]
    with pytest.raises(ProjectConfigError, match="label names a label definition"):
        load_project(write_project(tmp_path / "2", "churn", old))
    old["label"] = "churned"
    with pytest.raises(ProjectConfigError, match="min_auc and max_regression moved into model.gate"):
        load_project(write_project(tmp_path / "3", "churn", old))


@pytest.mark.parametrize(("gate", "task", "problem"), [
    ({"metric": "auc", "max": 0.7, "max_regression": 0.01}, "binary", "auc is higher-is-better: give `min`"),
    ({"metric": "rmse", "max_regression": 0.5}, "regression", "give `max`"),
    ({"metric": "rmse", "max": 3.0, "max_regression": 0.5}, "binary", "gate.metric 'rmse' does not apply to a binary"),
    ({"metric": "auc", "min": 0.7, "max_regression": 0.01}, "regression", "choose r2, rmse, mae"),
])
def test_the_gate_fits_the_task_and_the_metrics_direction(tmp_path, churn_raw, gate, task, problem):
    churn_raw["model"].update(gate=gate, task=task)
    with pytest.raises(ProjectConfigError, match=problem):
        load_project(write_project(tmp_path, "churn", churn_raw))


def test_a_source_must_be_a_plain_collection_with_an_event_time_field(tmp_path, churn_raw):
    churn_raw["sources"]["user_events"].update(collection="system.profile", timestamp="$ts")
    with pytest.raises(ProjectConfigError) as error:
        load_project(write_project(tmp_path, "churn", churn_raw))
    assert "sources.user_events.collection" in str(error.value) and "system collection" in str(error.value)
    assert "sources.user_events.timestamp" in str(error.value)


@pytest.mark.parametrize("source, problem", [
    ({"collection": "feature_pipelines"}, "sources.user_events.collection: Value error, 'feature_pipelines' is a "
                                          "platform collection"),
    ({"collection": "prediction_log"}, "'prediction_log' is a platform collection"),
    ({"database": "admin"}, "sources.user_events.database: Value error, 'admin' is one of MongoDB's own databases"),
    ({"database": "local"}, "'local' is one of MongoDB's own databases"),
], ids=str)
def test_a_source_is_never_a_platform_collection_or_a_server_database(tmp_path, churn_raw, source, problem):
    churn_raw["sources"]["user_events"].update(source)
    with pytest.raises(ProjectConfigError) as error:
        load_project(write_project(tmp_path, "churn", churn_raw))
    assert problem in str(error.value)


@pytest.mark.parametrize("source, problem", [
    # Another project's tiles, features, samples, markers: named by database and platform collection.
    ({"database": "mining_churn", "collection": "tiles_user_activity"}, "sources.user_events.collection: Value error, "
     "'tiles_user_activity' is a platform collection"),
    ({"collection": "features_user_activity"}, "'features_user_activity' is a platform collection"),
    ({"database": "elsewhere", "collection": "samples_churn"}, "'samples_churn' is a platform collection"),
    ({"collection": "predictions_x"}, "'predictions_x' is a platform collection"),
    ({"collection": "labels_churn"}, "'labels_churn' is a platform collection"),
    ({"collection": "serving_desired"}, "'serving_desired' is a platform collection"),
    # A namespace (or endpoint) database, with an ordinary collection name, in any case.
    ({"database": "mining_churn", "collection": "anything"}, "'mining_churn' is named like a project's namespace"),
    ({"database": "MINING_churn", "collection": "anything"}, "'MINING_churn' is named like a project's namespace"),
    ({"database": "mining_churn-endpoint", "collection": "anything"}, "named like a project's namespace"),
    ({"database": "Mining"}, "'Mining' is named like a project's namespace (mining_<project>) or like the platform"),
    ({"database": "Admin"}, "'Admin' is one of MongoDB's own databases"),
    ({"database": "LOCAL"}, "'LOCAL' is one of MongoDB's own databases"),
    ({"database": "Config"}, "'Config' is one of MongoDB's own databases"),
    ({"collection": "system.profile"}, "a system collection cannot be a source"),
], ids=str)
def test_the_project_boundary_is_checked_when_the_file_loads(tmp_path, churn_raw, monkeypatch, source, problem):
    monkeypatch.delenv("MINING_MONGO_DB", raising=False)  # the platform database: `mining`
    churn_raw["sources"]["user_events"].update(source)
    with pytest.raises(ProjectConfigError) as error:
        load_project(write_project(tmp_path, "churn", churn_raw))
    assert problem in str(error.value)


def test_the_boundary_follows_the_platform_database(tmp_path, churn_raw, monkeypatch):
    del churn_raw["demo"]
    churn_raw["sources"]["user_events"]["database"] = "team_spend"
    folder = write_project(tmp_path, "churn", churn_raw)
    assert load_project(folder, platform="mining").sources["user_events"].database == "team_spend"
    with pytest.raises(ProjectConfigError, match="'team_spend' is named like a project's namespace"):
        load_project(folder, platform="team")
    monkeypatch.setenv("MINING_MONGO_DB", "team")
    with pytest.raises(ProjectConfigError, match="named like a project's namespace"):
        load_project(folder)


def test_a_project_name_fits_its_databases_and_is_not_a_module_attribute(tmp_path, churn_raw, monkeypatch):
    monkeypatch.delenv("MINING_MONGO_DB", raising=False)
    longest = "p" * (63 - len("mining_") - len("-endpoint"))
    assert load_project(write_project(tmp_path, longest, {**churn_raw, "name": longest})).name == longest
    too_long = longest + "q"
    with pytest.raises(ProjectConfigError, match=f"is {len(too_long)} bytes; with MINING_MONGO_DB 'mining' a project "
                                                 f"name has at most {len(longest)}"):
        load_project(write_project(tmp_path, too_long, {**churn_raw, "name": too_long}))
    with pytest.raises(ProjectConfigError, match="name 'settings' is reserved"):
        load_project(write_project(tmp_path, "settings", {**churn_raw, "name": "settings"}))


def test_unknown_key_names_file_and_key(tmp_path, churn_raw):
    churn_raw["model"]["min_acu"] = 0.7  # a typo must not be silently ignored
    folder = write_project(tmp_path, "churn", churn_raw)
    with pytest.raises(ProjectConfigError) as error:
        load_project(folder)
    assert str(folder / "project.yaml") in str(error.value)
    assert "model.min_acu: unknown key" in str(error.value)


def test_missing_key_names_file_and_key(tmp_path, churn_raw):
    del churn_raw["sources"]["user_events"]["timestamp"]
    folder = write_project(tmp_path, "churn", churn_raw)
    with pytest.raises(ProjectConfigError, match=r"sources\.user_events\.timestamp: missing required key") as error:
        load_project(folder)
    assert str(folder / "project.yaml") in str(error.value)


def test_every_problem_of_the_file_is_reported(tmp_path, churn_raw):
    churn_raw["model"]["gate"]["max_regression"] = -1
    churn_raw["start_date"] = "not a date"
    del churn_raw["entity"]
    with pytest.raises(ProjectConfigError) as error:
        load_project(write_project(tmp_path, "churn", churn_raw))
    message = str(error.value)
    assert "model.gate.max_regression" in message and "start_date" in message and "entity: missing" in message


def test_name_must_match_folder(tmp_path, churn_raw):
    with pytest.raises(ProjectConfigError, match="must equal the project folder name 'other'"):
        load_project(write_project(tmp_path, "other", churn_raw))


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ProjectConfigError, match="not valid YAML"):
        load_project(write_project(tmp_path, "broken", "name: [unclosed"))
    with pytest.raises(ProjectConfigError, match="expected a mapping"):
        load_project(write_project(tmp_path, "listy", "- a\n- b\n"))
    with pytest.raises(ProjectConfigError, match="file not found"):
        load_project(tmp_path / "absent")


def test_project_names_lists_folders_with_a_project_file(tmp_path, churn_raw):
    write_project(tmp_path, "churn", churn_raw)
    (tmp_path / "notes").mkdir()
    assert project_names(tmp_path) == ["churn"]


def test_end_date_closes_the_partitions_where_the_data_ends(tmp_path, churn_raw):
    from assets.partitions import daily_partitions

    project = load_project(write_project(tmp_path, "churn", {**churn_raw, "end_date": "2024-02-10"}))
    partitions = daily_partitions(project)
    assert partitions.get_first_partition_key() == "2024-01-01"
    assert partitions.get_last_partition_key() == "2024-02-10"
    open_ended = load_project(write_project(tmp_path / "b", "churn", {k: v for k, v in churn_raw.items()
                                                                      if k != "end_date"}))
    assert open_ended.end_date is None
    with pytest.raises(ProjectConfigError, match="end_date 2023-12-31 is before start_date 2024-01-01"):
        load_project(write_project(tmp_path / "c", "churn", {**churn_raw, "end_date": "2023-12-31"}))


@pytest.mark.parametrize(("path", "value"), [
    (("model", "gate", "min"), float("nan")), (("model", "gate", "max_regression"), float("inf")),
    (("serving", "challenger", "traffic"), float("nan")), (("drift", "psi_threshold"), float("inf")),
])
def test_no_number_of_a_project_file_is_nan_or_infinite(tmp_path, churn_raw, path, value):
    node = churn_raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ProjectConfigError, match=re.escape(".".join(path))):
        load_project(write_project(tmp_path, "churn", churn_raw))
