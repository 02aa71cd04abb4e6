"""Every code location of workspace.yaml loads, through Dagster's own loader too."""

import importlib
import subprocess

import dagster as dg
import pytest
import yaml

from mining_platform import definitions
from mining_platform.project import project_names
from mining_platform.settings import console_script

from .conftest import REPO


def workspace_locations() -> list[dict]:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    return [entry["python_module"] for entry in workspace["load_from"]]


def test_workspace_lists_every_project():
    attributes = sorted(location["attribute"] for location in workspace_locations())
    assert attributes == project_names(REPO / "projects")


@pytest.mark.parametrize("location", workspace_locations(), ids=lambda loc: loc["location_name"])
def test_code_location_loads(location):
    module = importlib.import_module(location["module_name"])
    defs = getattr(module, location["attribute"])
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)
    prefix = location["attribute"]
    raw = defs.resolve_assets_def(dg.AssetKey([prefix, "raw", "user_events"]))
    assert isinstance(raw.partitions_def, dg.DailyPartitionsDefinition)
    assert set(defs.resources) >= {"mongo", "mlflow", "endpoint"}


def test_unknown_project_is_a_clear_attribute_error():
    with pytest.raises(AttributeError, match="has no project 'nope'"):
        definitions.nope  # noqa: B018


def test_dagster_cli_validates_the_workspace():
    result = subprocess.run(
        [console_script("dagster"), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
