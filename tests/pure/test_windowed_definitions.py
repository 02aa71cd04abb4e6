"""Windowed definitions as files: what loads, what is refused, and the catalog they make."""


import dagster as dg
import pytest

from mining_platform.spec.definition import FeatureDefinitionError
from mining_platform.spec.feature_files import load_feature_definition
from tests.fixtures.windowed import changed, project, windowed, write  # noqa: F401 (fixtures)

REFUSALS = {
    "unknown op": (changed(aggregations={"x": {"op": "median", "field": "a", "windows_days": [7]}}),
                   "aggregations.x.op: unknown op 'median'"),
    "a field path with $": (changed(aggregations={"x": {"op": "sum", "field": "$payload.amount", "windows_days": [7]}}),
                            "aggregations.x.field: '$payload.amount' is a field path without $"),
    "a window over 365 days": (changed(aggregations={"x": {"op": "count", "windows_days": [400]}}),
                               "windows of 1 to 365 days, got [400]"),
    "a post stage that is not a projection": (changed(post=[{"$group": {"_id": "$x"}}]),
                                              "post stage 1: only $addFields, $project, $set, $unset may follow"),
    "a post stage reading another collection": (changed(post=[{"$lookup": {"from": "x", "as": "y", "pipeline": []}}]),
                                                "post stage 1: only $addFields"),
    "a post stage setting the entity": (changed(post=[{"$addFields": {"user_id": "x"}}]),
                                        "post stage 1 ($addFields): sets or removes user_id"),
    "a post stage setting the run": (changed(post=[{"$set": {"run_id": "forged", "as_of.x": 1}}]),
                                     "post stage 1 ($set): sets or removes as_of, run_id"),
    "a post stage removing _id": (changed(post=[{"$unset": ["_id"]}]), "post stage 1 ($unset): sets or removes _id"),
    "a post stage projecting pipeline_version": (changed(post=[{"$project": {"pipeline_version": "v9"}}]),
                                                 "post stage 1 ($project): sets or removes pipeline_version"),
    "JavaScript in the filter": (changed(filter={"$where": "true"}), "filter: stage 1 ($match): $where runs JavaScript"),
    "JavaScript in a where": (changed(aggregations={"x": {"op": "count", "windows_days": [7], "where": {
        "$function": {"body": "return true", "args": [], "lang": "js"}}}}),
        "aggregations.x.where: stage 1 ($match): $function runs JavaScript"),
    "a sum without a field": (changed(aggregations={"x": {"op": "sum", "windows_days": [7]}}),
                              "op sum needs `field`"),
    "a count with a field": (changed(aggregations={"x": {"op": "count", "field": "a", "windows_days": [7]}}),
                             "op count takes no `field`"),
    "a feature nothing produces": (changed(post=None, features={"nope_7d": {"type": "int"}}),
                                   "features.nope_7d: no aggregation produces it"),
    "a count_by output as a feature": (changed(post=None, features={"modules_7d": {"type": "int"}}),
                                       "features.modules_7d: a count_by output is a map of counts"),
    "a pipeline in a windowed file": (changed(pipeline=[{"$match": {}}]), "pipeline: unknown key"),
    "an unknown kind": (changed(kind="streaming"), "kind: 'streaming' is not a kind of feature definition"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=str)
def test_refusals_name_the_file_and_the_problem(case, tmp_path, project):
    content, expected = REFUSALS[case]
    with pytest.raises(FeatureDefinitionError) as caught:
        load_feature_definition(write(tmp_path, project, content), project)
    assert str(caught.value).startswith(str(tmp_path / project.name / "features" / "activity.yaml"))
    assert expected in str(caught.value)


def test_a_windowed_definition_loads_with_its_windows(windowed):
    assert windowed.window_days == 7 and windowed.target == "features_activity"
    assert windowed.tiles_target == "tiles_activity"
    assert set(windowed.outputs) >= {"events_3d", "events_7d", "modules_7d", "recency_3d"}


def test_the_asset_catalog_is_the_feature_catalog():
    from sensors.definitions import build_definitions

    definitions = build_definitions("churn")
    activity = definitions.resolve_assets_def(["churn", "features", "user_activity"])
    schema = activity.specs_by_key[activity.key].metadata["dagster/column_schema"]
    events = next(c for c in schema.columns if c.name == "events_30d")
    assert events.type == "int" and "events in the 30 days before as_of" in events.description
    assert "(version 3)" in events.description
    samples = definitions.resolve_assets_def(["churn", "samples"])
    metadata = samples.specs_by_key[samples.key].metadata
    lineage = metadata["dagster/column_lineage"].deps_by_column
    assert lineage["events_30d"][0].asset_key == activity.key and lineage["events_30d"][0].column_name == "events_30d"
    assert lineage["clicks_30d"][0].asset_key == dg.AssetKey(["churn", "features", "module_preferences"])
    assert metadata["feature_versions"] == {"module_preferences": 2, "user_activity": 3}
    assert [c.name for c in metadata["dagster/column_schema"].columns][-1] == "churned"
    assert definitions.resolve_assets_def(["churn", "tiles", "user_activity"])
