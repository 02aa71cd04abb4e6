"""Every code location of workspace.yaml loads, through Dagster's own loader too."""

import importlib
import subprocess

import dagster as dg
import pytest
import yaml

from mining_platform.settings import console_script
from mining_platform.spec import load_spec
from mining_platform.spec.project import project_names
from sensors import definitions
from tests.conftest import REPO


def workspace_locations() -> list[dict]:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    return [entry["python_module"] for entry in workspace["load_from"]]


def test_no_project_name_can_be_one_of_the_modules_own_attributes():
    """A code location is `-a <project>`, a module attribute: a project named like one of the module's own names
    would resolve to that name instead of its definitions, so load_project refuses those names."""
    import re

    from mining_platform.spec.project import RESERVED_PROJECT_NAMES
    from mining_platform.spec.source_config import PROJECT_NAME

    possible = {name for name in vars(definitions) if re.match(PROJECT_NAME, name)}
    assert possible and possible <= RESERVED_PROJECT_NAMES, possible - RESERVED_PROJECT_NAMES


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
    spec = load_spec(REPO / "projects" / prefix)
    graph = defs.resolve_asset_graph()
    sources = {key: dg.AssetKey([prefix, "sources", key]) for key in spec.project.sources}
    for key in sources.values():  # observed, never materialised: the platform does not write sources
        assert graph.get(key).is_observable and not graph.get(key).is_materializable
    partitions = graph.get(next(iter(sources.values()))).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    demo = [key for key in graph.get_all_asset_keys() if key.path[1] == "demo"]
    assert demo == ([dg.AssetKey([prefix, "demo", spec.project.demo.source])] if spec.project.demo else [])
    assert set(defs.resources) >= {"mongo", "mlflow", "endpoint"}
    for feature in spec.definitions:
        # What reads a source day also follows the demo generator writing it (a run of both writes first).
        reads = {sources[feature.source], *(d for d in demo if d.path[2] == feature.source)}
        asset = defs.resolve_assets_def(dg.AssetKey([prefix, "features", feature.name]))
        assert asset.code_versions_by_key[asset.key] == feature.content_hash
        assert asset.partitions_def == partitions
        assert {key.name for key in asset.check_keys} == {f"{name}_contract" for name in feature.features}
        if feature.kind == "windowed":  # the window reads the tiles of its days; a tile day, its source day
            tiles = defs.resolve_assets_def(dg.AssetKey([prefix, "tiles", feature.name]))
            assert asset.asset_deps[asset.key] == {tiles.key}
            assert tiles.asset_deps[tiles.key] == reads
            assert tiles.partitions_def == partitions and tiles.code_versions_by_key[tiles.key] == feature.content_hash
        else:
            assert asset.asset_deps[asset.key] == reads

    samples = defs.resolve_assets_def(dg.AssetKey([prefix, "samples"]))
    assert samples.partitions_def == partitions
    assert samples.asset_deps[samples.key] == {sources[spec.label_definition.source],
                                               *(dg.AssetKey([prefix, "features", f.name]) for f in spec.definitions)}
    model = defs.resolve_assets_def(dg.AssetKey([prefix, "model"]))
    assert model.asset_deps[model.key] == {samples.key}
    [gate] = model.check_specs
    assert gate.name == "gate" and gate.blocking
    deployment = defs.resolve_assets_def(dg.AssetKey([prefix, "deployment"]))
    assert deployment.asset_deps[deployment.key] == {model.key}


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


def test_a_bad_feature_file_fails_its_code_location_naming_the_file(tmp_path, monkeypatch):
    import shutil

    from mining_platform.spec.definition import FeatureDefinitionError

    shutil.copytree(REPO / "projects", tmp_path / "projects")
    bad = tmp_path / "projects/spend/features/purchase_history.yaml"
    bad.write_text(bad.read_text().replace("op: count", "op: tally", 1))
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(tmp_path / "projects"))
    with pytest.raises(FeatureDefinitionError,
                       match=r"purchase_history.yaml: 1 problem:\n  - aggregations.events.op: unknown op 'tally'"):
        definitions.build_definitions("spend")
