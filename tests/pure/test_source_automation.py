"""Tile days follow their source day (and the windows their tiles): the automation condition reacts to a changed
data version of that day."""

import dagster as dg
import pytest

from assets.features import build_tiles_asset
from assets.sources import build_source_asset
from mining_platform.spec import load_spec
from mining_platform.spec.tags import DATA_VERSION_TAG
from resources import MongoResource
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
    from assets.keys import project_keys
    from sensors.definitions import project_definitions

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


def test_observed_changes_are_followed_only_on_the_latest_days_and_runs_upstream_always():
    from assets.demo import build_demo_asset
    from mining_platform.spec.project import AutomationConfig

    churn = load_spec(REPO / "projects" / "churn")  # automation.follow_days: 3 (the default); end_date 2024-03-31
    assert churn.project.automation.follow_days == 3
    spend = load_spec(REPO / "projects" / "spend")
    follow_three = spend.project.model_copy(update={"automation": AutomationConfig(follow_days=3)})
    [windowed] = spend.definitions
    activity = next(d for d in churn.definitions if d.name == "user_activity")
    assets = dg.Definitions(
        assets=[build_source_asset(follow_three, windowed.source), build_tiles_asset(follow_three, windowed),
                build_source_asset(churn.project, activity.source), build_demo_asset(churn.project),
                build_tiles_asset(churn.project, activity)],
        resources={"mongo": MongoResource(uri="mongodb://127.0.0.1:9/?directConnection=true", database="unused")})

    def observe(source: dg.AssetKey, days) -> None:
        for day in days:
            instance.report_runless_asset_event(dg.AssetObservation(source, partition=day,
                                                                    tags={DATA_VERSION_TAG: f"1 events, {day}"}))

    def requested(cursor):
        result = dg.evaluate_automation_conditions(defs=assets, instance=instance, cursor=cursor)
        return {project: sorted(result.get_requested_partitions(dg.AssetKey([project, "tiles", name])))
                for project, name in (("spend", windowed.name), ("churn", activity.name))}, result.cursor

    history = ("2024-01-05", "2024-02-10", "2024-03-28", "2024-03-29", "2024-03-31")
    with dg.instance_for_test() as instance:
        _, cursor = requested(None)
        # A first observation of the whole history: only the last three days follow.
        observe(dg.AssetKey(["spend", "sources", windowed.source]), history)
        observe(dg.AssetKey(["churn", "sources", activity.source]), history)
        days, cursor = requested(cursor)
        assert days == {"spend": ["2024-03-29", "2024-03-31"], "churn": []}  # churn's tiles wait for its demo days
        # Days a run wrote upstream (here the demo generator, launched by the user) follow, however old.
        for day in ("2024-01-05", "2024-03-31"):
            instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["churn", "demo", activity.source]),
                                                                        partition=day))
        days, cursor = requested(cursor)
        assert days == {"spend": [], "churn": ["2024-01-05", "2024-03-31"]}
        observe(dg.AssetKey(["spend", "sources", windowed.source]), ("2024-02-10", "2024-03-30"))  # changed again
        days, cursor = requested(cursor)
        assert days["spend"] == ["2024-03-30"]
