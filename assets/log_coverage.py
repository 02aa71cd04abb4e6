"""Log coverage: the share of a Dagster instance's finished runs, and of their steps, whose logs hold what a
person debugging them needs: the start, the parameters (the run's config and tags, kept with its record), the
outcome and, on a failure, the error (the requirements' figure: at least 98 % of core task nodes).

A run is covered when its event log holds its start, its outcome (success, failure or cancellation) and, when it
failed, an error: its own failure's or a failed step's. A step is covered when its log holds its start, its
outcome and, when it failed, its error. Runs still queued or in progress are left out; a run cancelled before it
started has no steps and is counted as covered when its cancellation is logged.
"""

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg

E = dg.DagsterEventType
RUN_OUTCOMES = {E.RUN_SUCCESS, E.RUN_FAILURE, E.RUN_CANCELED}
STEP_OUTCOMES = {E.STEP_SUCCESS, E.STEP_FAILURE, E.STEP_SKIPPED, E.STEP_UP_FOR_RETRY}
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass
class Coverage:
    runs: int = 0
    runs_covered: int = 0
    steps: int = 0
    steps_covered: int = 0
    gaps: list[str] = field(default_factory=list)  # what each uncovered run or step lacks (the first 20)

    @property
    def share(self) -> float | None:
        """Covered runs and steps over all of them (the figure compared with 98 %)."""
        total = self.runs + self.steps
        return (self.runs_covered + self.steps_covered) / total if total else None

    def as_dict(self) -> dict:
        return {"runs": self.runs, "runs_covered": self.runs_covered, "steps": self.steps,
                "steps_covered": self.steps_covered, "share": self.share, "gaps": self.gaps}


def _gap(coverage: Coverage, what: str) -> None:
    if len(coverage.gaps) < 20:
        coverage.gaps.append(what)


def run_coverage(instance: dg.DagsterInstance, run: dg.DagsterRun, coverage: Coverage) -> None:
    """Count one finished run and its steps into `coverage`."""
    events = [entry.dagster_event for entry in instance.all_logs(run.run_id) if entry.dagster_event is not None]
    kinds = {event.event_type for event in events}
    steps: dict[str, set[str]] = {}
    step_errors: set[str] = set()
    for event in events:
        if event.step_key:
            steps.setdefault(event.step_key, set()).add(event.event_type)
            if event.event_type == E.STEP_FAILURE and event.step_failure_data and event.step_failure_data.error:
                step_errors.add(event.step_key)
    failure = next((e for e in events if e.event_type == E.RUN_FAILURE), None)
    missing = []
    started = E.RUN_START in kinds or (run.status == dg.DagsterRunStatus.CANCELED and not steps)
    if not started:
        missing.append("start")
    if not kinds & RUN_OUTCOMES:
        missing.append("outcome")
    if run.status == dg.DagsterRunStatus.FAILURE and not step_errors and not (
            failure and failure.event_specific_data and getattr(failure.event_specific_data, "error", None)):
        missing.append("error")
    coverage.runs += 1
    if missing:
        _gap(coverage, f"run {run.run_id} ({run.job_name}): no {', '.join(missing)}")
    else:
        coverage.runs_covered += 1
    for key, step_kinds in sorted(steps.items()):
        lacking = [name for name, ok in (("start", E.STEP_START in step_kinds),
                                         ("outcome", bool(step_kinds & STEP_OUTCOMES)),
                                         ("error", E.STEP_FAILURE not in step_kinds or key in step_errors)) if not ok]
        coverage.steps += 1
        if lacking:
            _gap(coverage, f"step {key} of run {run.run_id}: no {', '.join(lacking)}")
        else:
            coverage.steps_covered += 1


def log_coverage(instance: dg.DagsterInstance, *, since: dt.datetime, limit: int = 10_000) -> Coverage:
    """The coverage of every run that finished after `since` (the newest `limit`)."""
    coverage = Coverage()
    records = instance.get_run_records(dg.RunsFilter(statuses=list(FINISHED), updated_after=since), limit=limit)
    for record in records:
        run_coverage(instance, record.dagster_run, coverage)
    return coverage
