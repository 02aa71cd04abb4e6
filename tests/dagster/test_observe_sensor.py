"""`<p>_observe_sources_sensor`: the latest days every tick, older days a chunk at a time, no run launched."""

import datetime as dt

import dagster as dg
import pytest

from assets.instance import observed_data_versions
from assets.keys import source_key
from mining_platform.spec.project import AutomationConfig
from sensors import observe

UTC = dt.timezone.utc


@pytest.fixture
def project(churn_project):
    """A project over `orders` (no demo), partitions 2024-01-01..2024-04-30, following its last 3 days."""
    orders = churn_project.sources["user_events"].model_copy(update={"collection": "orders", "timestamp": "ordered_at",
                                                                          "demo_of": None})
    return churn_project.model_copy(update={
        "sources": {"orders": orders}, "demo": None, "end_date": dt.date(2024, 4, 30),
        "automation": AutomationConfig(follow_days=3)})


def test_ticks_read_the_latest_days_and_walk_the_history_a_chunk_at_a_time(mongo, project, monkeypatch):
    orders = mongo.db()["orders"]
    orders.create_index("ordered_at")
    days = [dt.datetime(2024, 1, 3, 10, tzinfo=UTC), dt.datetime(2024, 2, 20, 9, tzinfo=UTC),
            dt.datetime(2024, 4, 29, 8, tzinfo=UTC), dt.datetime(2024, 4, 30, 23, tzinfo=UTC)]
    orders.insert_many([{"user_id": i, "ordered_at": at} for i, at in enumerate(days)])
    sensor = observe.build_observe_sensor(project)
    asset = source_key(project.name, "orders")
    now = dt.datetime(2024, 5, 1, 12, tzinfo=UTC)
    monkeypatch.setattr(observe, "_now", lambda: now)

    with dg.instance_for_test() as instance:
        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"mongo": mongo})
            result = sensor(context)
            observed = {}
            if isinstance(result, dg.SensorResult):
                assert not result.run_requests  # observing launches no run
                for event in result.asset_events:
                    instance.report_runless_asset_event(event)
                    observed[event.partition] = event.tags["dagster/data_version"]
            return observed, result, context.cursor

        # First tick: the latest days (2024-04-28..30, the lateness floor is 2) and the full pass's first chunk.
        observed, _, cursor = tick(None)
        assert observed == {"2024-01-03": "1 events, newest 2024-01-03T10:00:00+00:00",
                            "2024-04-29": "1 events, newest 2024-04-29T08:00:00+00:00",
                            "2024-04-30": "1 events, newest 2024-04-30T23:00:00+00:00"}
        observed, _, cursor = tick(cursor)  # 2024-02-01..03-02
        assert observed == {"2024-02-20": "1 events, newest 2024-02-20T09:00:00+00:00"}
        # A late event on a recent day is seen on the next tick, whatever the full pass is doing.
        orders.insert_one({"user_id": 9, "ordered_at": dt.datetime(2024, 4, 30, 1, tzinfo=UTC)})
        observed, _, cursor = tick(cursor)  # 2024-03-03..04-02
        assert observed == {"2024-04-30": "2 events, newest 2024-04-30T23:00:00+00:00"}
        observed, skipped, cursor = tick(cursor)  # 2024-04-03..04-27: the pass ends at the recent days
        assert observed == {} and isinstance(skipped, dg.SkipReason)
        assert "no day changed" in skipped.skip_message and "2024-04-03..2024-04-27 (full pass)" in skipped.skip_message
        # An old day replaced: not seen by the recent days, seen by the next full pass (an hour after the last).
        orders.delete_many({"ordered_at": {"$lt": dt.datetime(2024, 1, 4, tzinfo=UTC)}})
        observed, skipped, cursor = tick(cursor)
        assert observed == {} and "full pass" not in skipped.skip_message
        now += observe.SWEEP_EVERY
        observed, _, cursor = tick(cursor)
        assert observed == {"2024-01-03": "0 events"}
        assert orders.count_documents({}) == 4  # observing never writes
        assert instance.get_runs() == []
        # One observation per change, and the latest of each day is the day's version now.
        assert len(instance.fetch_observations(asset, limit=100).records) == 6
        assert observed_data_versions(instance, asset) == {
            "2024-01-03": "0 events", "2024-02-20": "1 events, newest 2024-02-20T09:00:00+00:00",
            "2024-04-29": "1 events, newest 2024-04-29T08:00:00+00:00",
            "2024-04-30": "2 events, newest 2024-04-30T23:00:00+00:00"}


def test_a_full_pass_forgets_a_removed_source_and_never_reads_before_start_date(mongo, project):
    from sensors.observe import ObserveCursor, observe_tick

    now = dt.datetime(2024, 5, 1, 12, tzinfo=UTC)
    cursor = ObserveCursor(sweep={"orders": "2023-06-01", "gone": "2024-01-01"}, sweep_started=now.timestamp())
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"mongo": mongo})
        _, read = observe_tick(context, mongo, project, cursor, now)
    assert cursor.sweep == {"orders": "2024-02-01"}  # clamped to start_date 2024-01-01, then one chunk
    assert any("2024-01-01..2024-01-31 (full pass)" in line for line in read)
