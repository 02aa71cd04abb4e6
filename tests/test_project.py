"""project.yaml: loading, and errors that name the file and the key."""

import datetime as dt
from pathlib import Path

import pytest
import yaml

from mining_platform.spec.project import ProjectConfigError, load_project, project_names

from .conftest import REPO

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
    assert churn_project.events == "user_events"
    assert churn_project.start_date == dt.date(2024, 1, 1)
    assert churn_project.label.horizon_days == 14
    assert churn_project.model.name == "churn_xgb"
    assert churn_project.model.params["n_estimators"] == 300
    assert churn_project.drift.min_drifted_features == 2


def test_demo_section_is_optional(tmp_path, churn_raw):
    del churn_raw["demo"]
    project = load_project(write_project(tmp_path, "churn", churn_raw))
    assert project.demo.users == 2000


def test_unknown_key_names_file_and_key(tmp_path, churn_raw):
    churn_raw["model"]["min_acu"] = 0.7  # a typo must not be silently ignored
    folder = write_project(tmp_path, "churn", churn_raw)
    with pytest.raises(ProjectConfigError) as error:
        load_project(folder)
    assert str(folder / "project.yaml") in str(error.value)
    assert "model.min_acu: unknown key" in str(error.value)


def test_missing_key_names_file_and_key(tmp_path, churn_raw):
    del churn_raw["label"]["horizon_days"]
    folder = write_project(tmp_path, "churn", churn_raw)
    with pytest.raises(ProjectConfigError, match=r"label\.horizon_days: missing required key") as error:
        load_project(folder)
    assert str(folder / "project.yaml") in str(error.value)


def test_every_problem_of_the_file_is_reported(tmp_path, churn_raw):
    churn_raw["model"]["min_auc"] = 1.5
    churn_raw["start_date"] = "not a date"
    del churn_raw["entity"]
    with pytest.raises(ProjectConfigError) as error:
        load_project(write_project(tmp_path, "churn", churn_raw))
    message = str(error.value)
    assert "model.min_auc" in message and "start_date" in message and "entity: missing" in message


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
