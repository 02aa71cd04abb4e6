"""Which alerts a fact raises: a failed run (a failed gate, a sample day overdue, a retrain failing again and
again), a replica that stopped beating, a sensor's decision. Plain functions over what the sensors read; the
sensors (`sensors/alerts.py`) only fetch the facts and send."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mining_platform.alerts.alert import Alert
from mining_platform.spec.alerts_config import AlertsConfig
from mining_platform.spec.replicas import Heartbeat
from mining_platform.spec.tags import CAUSE_TAG, FAILED, GATE_TAG, PARTITION_TAG

GATE_FAILURE = "DagsterAssetCheckFailedError"  # what a step raises when its blocking gate check failed
IMMATURE = "has not fully elapsed"  # the samples' refusal of a day whose label window is not in the source yet
MAX_ERROR = 2000  # characters of an error an alert carries


@dataclass(frozen=True)
class FailedStep:
    key: str  # Dagster's step key: `<p>__model`, `<p>__samples`, …
    error_class: str
    message: str


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR] + " …"


def run_failure_alerts(project: str, *, run_id: str, job: str, tags: dict[str, str], steps: list[FailedStep],
                       message: str, url: str, alerts: AlertsConfig, now: dt.datetime,
                       label_window_end=None, gates: list[str] | None = None,
                       gate_reason: str | None = None) -> list[Alert]:
    """The alerts of one failed run. `label_window_end(partition)`: when a sample day's label window closes in the
    source (for samples_overdue); `gates`: the model's newest versions' gate verdicts, newest first (for
    retrain_failing); `gate_reason`: the failed version's gate reason."""
    partition = tags.get(PARTITION_TAG)
    gate = next((s for s in steps if s.key == f"{project}__model" and s.error_class == GATE_FAILURE), None)
    immature = next((s for s in steps if s.key == f"{project}__samples" and IMMATURE in s.message), None)
    others = [s for s in steps if s is not gate and s is not immature]

    def details(step: FailedStep | None, **more) -> dict:
        return {"run_id": run_id, "job": job, **({"partition": partition} if partition else {}),
                **({"cause": tags[CAUSE_TAG]} if tags.get(CAUSE_TAG) else {}),
                "failed_steps": ", ".join(s.key for s in steps) or "(none: the run failed outside a step)",
                "error": _short(step.message if step else message), **more}

    found = []
    # Any failure but the two below is a run failure; so is a run that failed outside its steps.
    if others or not steps:
        found.append(Alert(project, "run_failure", f"run {run_id[:8]} of {job} failed", details(
            others[0] if others else None), url, now, f"{project}:run_failure:{run_id}"))
    if gate is not None:
        found.append(Alert(project, "gate_failed", f"a trained version failed its gate (run {run_id[:8]})",
                           details(gate, gate=gate_reason or gate.message), url, now, f"{project}:gate:{run_id}"))
        in_a_row = 0
        for verdict in gates or []:
            if verdict != FAILED:
                break
            in_a_row += 1
        if in_a_row >= alerts.retrain_failures:
            found.append(Alert(project, "retrain_failing", f"the last {in_a_row} trained versions all failed their "
                               "gate", details(gate, versions_failed_in_a_row=in_a_row), url, now,
                               f"{project}:retrain_failing:{run_id}"))
    # A day refused because its label window is not in the source yet is the platform waiting, not a failure;
    # it alerts once the window should long have been there.
    if immature is not None and label_window_end is not None and partition:
        closes = label_window_end(partition)
        if now - closes >= dt.timedelta(days=alerts.overdue_days):
            found.append(Alert(project, "samples_overdue", f"sample day {partition} still has no complete label "
                               f"window, {(now - closes).days} days after it should have closed",
                               details(immature, label_window_closed_at=closes.isoformat()), url, now,
                               f"{project}:samples_overdue:{partition}"))
    return [a for a in found if alerts.wants(a.event)]


def gate_verdicts(versions) -> list[str]:
    """The gate verdicts of registered versions (`registry.inventory.RegisteredVersion`, newest first)."""
    return [v.tags.get(GATE_TAG, "") for v in versions]


def silent_replicas(project: str, heartbeats: list[Heartbeat], *, now: dt.datetime, alerts: AlertsConfig) -> list[Alert]:
    """A replica whose heartbeat stopped without a clean shutdown (which removes it): one alert per silence."""
    if not alerts.wants("replica_silent"):
        return []
    return [Alert(project, "replica_silent", f"endpoint replica {beat.replica} on {beat.host} stopped beating "
                  f"{int((now - beat.at).total_seconds())} s ago",
                  {"replica": beat.replica, "host": beat.host, "last_heartbeat": beat.at.isoformat(),
                   "serving": {role: served.version for role, served in beat.served.items()}},
                  None, now, f"{project}:replica_silent:{beat.replica}:{beat.at.isoformat()}")
            for beat in heartbeats if not beat.live(now)]


DECISIONS = {"drift": "drift_decision", "performance": "performance_decision"}


def decision_alert(project: str, *, run_id: str, job: str, tags: dict[str, str], url: str, now: dt.datetime,
                   alerts: AlertsConfig) -> Alert | None:
    """A run a sensor launched on its own decision (a drift retrain, a performance promotion, retirement or
    retrain), with the evidence it was tagged with; None for any other run, or when the event is not wanted."""
    event = DECISIONS.get(tags.get(CAUSE_TAG, ""))
    if event is None or not alerts.wants(event):
        return None
    evidence = {key: value for key, value in sorted(tags.items()) if key.startswith("mining.")}
    return Alert(project, event, f"{tags[CAUSE_TAG]} decided: {job} launched (run {run_id[:8]})",
                 {"run_id": run_id, "job": job, **evidence}, url, now, f"{project}:{event}:{run_id}")
