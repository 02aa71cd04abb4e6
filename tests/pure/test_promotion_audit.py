"""Who moved an alias, from a deployment run's tags; when a replica counts as live (pure)."""

import datetime as dt

import pytest

from mining_platform.deployment.audit import evidence_of, moved_by
from mining_platform.spec.replicas import Served, heartbeat_document, parse_heartbeat

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(("tags", "rollback", "kind"), [
    ({}, False, "deployment"),
    ({}, True, "rollback"),
    ({"dagster/sensor_name": "churn_performance_sensor", "mining.cause": "performance"}, False, "sensor"),
    ({"dagster/sensor_name": "churn_drift_sensor", "mining.cause": "drift"}, False, "sensor"),
    ({"dagster/sensor_name": "churn_champion_sensor", "mining.cause": "champion_moved"}, False, "hand"),
    ({"dagster/sensor_name": "churn_champion_sensor", "mining.cause": "challenger_moved"}, False, "hand"),
])
def test_who_moved_the_alias(tags, rollback, kind):
    mover = moved_by(tags, run_id="r1", job="churn_deploy_job", rollback=rollback)
    assert mover.kind == kind and mover.run_id == "r1" and mover.sensor == tags.get("dagster/sensor_name")


def test_evidence_keeps_the_cause_and_the_sensors_figures_only():
    tags = {"mining.cause": "performance", "mining.performance.difference": "0.03", "mining.drift.psi": "0.4",
            "dagster/sensor_name": "s", "owner": "team-a"}
    assert evidence_of(tags) == {"mining.cause": "performance", "mining.performance.difference": "0.03",
                                 "mining.drift.psi": "0.4"}


def test_a_replica_is_live_for_three_of_its_own_intervals():
    beat = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)
    document = heartbeat_document("pod-a:1", host="pod-a", pid=1, started_at=beat, now=beat.replace(tzinfo=None),
                                  interval_seconds=5, served={"champion": Served("4", "t")}, errors={})
    heartbeat = parse_heartbeat(document)
    assert heartbeat.version("champion") == "4" and heartbeat.version("challenger") is None
    assert heartbeat.live(beat + dt.timedelta(seconds=15))
    assert not heartbeat.live(beat + dt.timedelta(seconds=15.1))
