"""Tile days follow their source day (and the windows their tiles): the automation condition reacts to a changed
data version of that day."""

import dagster as dg
import pytest

from mining_platform.assets.demo import DATA_VERSION_TAG
from mining_platform.assets.features import build_tiles_asset
from mining_platform.assets.sources import build_source_asset
from mining_platform.resources import MongoResource
from mining_platform.spec import load_spec
from tests.conftest import REPO

pytestmark = pytest.mark.fast


def test_a_tile_day_runs_when_its_source_day_changes_and_only_then():
    spec = load_spec(REPO / "projects" / "spend")
    [definition] = spec.definitions  # windowed: what reads the source day is its tiles
    # Evaluating conditions reads only the instance; the resource is never connected.
    assets = dg.Definitions(
        assets=[build_source_asset(spec.project, definition.source), build_tiles_asset(spec.project, definition)],
        resources={"mongo": MongoResource(uri="mongodb://127.0.0.1:9/?directConnection=true", database="unused")})
    source = dg.AssetKey(["spend", "sources", definition.source])
    feature = dg.AssetKey(["spend", "tiles", definition.name])

    def observe(day: str, version: str) -> None:
        instance.report_runless_asset_event(dg.AssetObservation(source, partition=day, tags={DATA_VERSION_TAG: version}))

    def requested(cursor):
        result = dg.evaluate_automation_conditions(defs=assets, instance=instance, cursor=cursor)
        return sorted(result.get_requested_partitions(feature)), result.cursor

    with dg.instance_for_test() as instance:
        days, cursor = requested(None)
        assert days == []  # no source day observed: nothing to compute
        observe("2024-02-01", "5245 events, newest 2024-02-01T23:59:00+00:00")
        observe("2024-02-02", "5100 events, newest 2024-02-02T23:58:00+00:00")
        days, cursor = requested(cursor)
        assert days == ["2024-02-01", "2024-02-02"]
        days, cursor = requested(cursor)
        assert days == []  # handled
        # A late event changes an older day: exactly that day again.
        observe("2024-02-01", "5246 events, newest 2024-02-01T23:59:00+00:00")
        days, cursor = requested(cursor)
        assert days == ["2024-02-01"]


def test_a_day_is_scored_once_its_features_are_committed_and_a_champion_was_deployed():
    from mining_platform.definitions import project_definitions
    from mining_platform.keys import project_keys

    spec = load_spec(REPO / "projects" / "spend")
    k = project_keys(spec)
    assets = project_definitions(spec)  # the whole graph; only the predictions' requests are looked at

    def committed(day: str) -> None:
        for key in k.feature_keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))

    def deployed() -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(k.deployment))

    def requested(cursor):
        result = dg.evaluate_automation_conditions(defs=assets, instance=instance, cursor=cursor)
        return sorted(result.get_requested_partitions(k.predictions)), result.cursor

    with dg.instance_for_test() as instance:
        days, cursor = requested(None)  # the sensor ticks before any feature day exists
        committed("2024-02-01")
        committed("2024-02-02")
        days, cursor = requested(cursor)
        assert days == []  # no champion deployed yet
        deployed()
        days, cursor = requested(cursor)
        assert days == ["2024-02-01", "2024-02-02"]  # every committed day, once a champion is live
        for day in days:
            instance.report_runless_asset_event(dg.AssetMaterialization(k.predictions, partition=day))
        deployed()
        days, cursor = requested(cursor)
        assert days == []  # a new deployment does not rescore the past
        committed("2024-02-03")
        committed("2024-02-01")  # recommitted
        days, cursor = requested(cursor)
        assert days == ["2024-02-01", "2024-02-03"]
