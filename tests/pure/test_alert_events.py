"""Which alerts a failed run raises: the classification on its own, over the facts the sensor reads."""

import datetime as dt

from mining_platform.alerts.events import FailedStep, decision_alert, run_failure_alerts, silent_replicas
from mining_platform.spec.alerts_config import AlertsConfig
from mining_platform.spec.replicas import Heartbeat

NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.timezone.utc)
IMMATURE = FailedStep("shop__samples", "Failure", "label window [2026-12-02, 2026-12-09) has not fully elapsed")


def events(steps, *, alerts=AlertsConfig(), closes=NOW, gates=None, partition="2026-12-01"):
    found = run_failure_alerts("shop", run_id="r" * 36, job="__ASSET_JOB", tags={"dagster/partition": partition},
                               steps=steps, message="run failed", url="u", alerts=alerts, now=NOW,
                               label_window_end=lambda p: closes, gates=gates)
    return [a.event for a in found]


def test_a_day_waiting_for_its_labels_alerts_only_once_overdue():
    assert events([IMMATURE], closes=NOW - dt.timedelta(hours=3)) == []
    assert events([IMMATURE], closes=NOW - dt.timedelta(days=2)) == ["samples_overdue"]
    assert events([IMMATURE], closes=NOW - dt.timedelta(hours=3), alerts=AlertsConfig(overdue_days=0)) == [
        "samples_overdue"]


def test_a_failed_gate_is_its_own_alert_and_counts_the_failures_in_a_row():
    gate = FailedStep("shop__model", "DagsterAssetCheckFailedError", "1 blocking asset check failed")
    assert events([gate], gates=["failed", "failed", "passed"]) == ["gate_failed"]
    assert events([gate], gates=["failed", "failed", "failed", "passed"]) == ["gate_failed", "retrain_failing"]
    # Another step failing too is a run failure besides.
    broken = FailedStep("shop__samples", "OperationFailure", "not authorized")
    assert events([gate, broken], gates=[]) == ["run_failure", "gate_failed"]
    # A model step failing otherwise (MLflow down) is a run failure, not a gate.
    assert events([FailedStep("shop__model", "ConnectionError", "refused")]) == ["run_failure"]


def test_a_run_that_failed_outside_its_steps_is_a_run_failure_and_unwanted_events_are_dropped():
    assert events([]) == ["run_failure"]
    assert events([], alerts=AlertsConfig(events=["gate_failed"])) == []


def test_silences_and_decisions():
    beats = [Heartbeat("a", "pod-a", NOW - dt.timedelta(seconds=5), 5.0, {}, {}),
             Heartbeat("b", "pod-b", NOW - dt.timedelta(seconds=16), 5.0, {}, {})]
    [silent] = silent_replicas("shop", beats, now=NOW, alerts=AlertsConfig())
    assert silent.details["replica"] == "b" and silent.key == f"shop:replica_silent:b:{beats[1].at.isoformat()}"
    tags = {"mining.cause": "performance", "mining.performance.decision": "promote"}
    assert decision_alert("shop", run_id="r", job="j", tags=tags, url="u", now=NOW, alerts=AlertsConfig()) is None
    wanted = AlertsConfig(events=["performance_decision"])
    alert = decision_alert("shop", run_id="r", job="j", tags=tags, url="u", now=NOW, alerts=wanted)
    assert alert.event == "performance_decision" and alert.details["mining.performance.decision"] == "promote"
    assert decision_alert("shop", run_id="r", job="j", tags={"mining.cause": "champion_moved"}, url="u", now=NOW,
                          alerts=AlertsConfig(events=["drift_decision", "performance_decision"])) is None


def test_an_alerts_block_is_refused_naming_the_key():
    import pytest
    from pydantic import ValidationError

    for raw, where in [({"webhook": {"url": "ftp://x"}}, "webhook.url"),
                       ({"webhook": {"url": "https://h", "secret_env": "lower-case"}}, "webhook.secret_env"),
                       ({"email": {"to": ["a@b.com\nBcc: x@y.com"], "from": "m@e.com", "smtp": {"host": "h"}}},
                        "email.to"),
                       ({"email": {"to": ["a@b.com"], "from": "m@e.com", "smtp": {"host": "h", "user_env": "U"}}},
                        "give user_env and password_env together"),
                       ({"events": ["everything"]}, "events.0"),
                       ({"webhook": {"url": "https://h", "token": "inline"}}, "webhook.token")]:
        with pytest.raises(ValidationError) as error:
            AlertsConfig.model_validate(raw)
        assert where in str(error.value), raw
