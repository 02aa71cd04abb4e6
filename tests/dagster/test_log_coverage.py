"""Log coverage over a real instance's event log: succeeded and failed runs are covered, a run whose log holds
no start or outcome is not, and says what it lacks."""

import datetime as dt

import dagster as dg

from assets.log_coverage import log_coverage


@dg.asset
def fine() -> int:
    return 1


@dg.asset
def broken() -> int:
    raise ValueError("the source is gone")


def test_runs_and_steps_with_start_outcome_and_error_are_covered_and_a_silent_run_is_not():
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    with dg.instance_for_test() as instance:
        assert dg.materialize([fine], instance=instance).success
        assert not dg.materialize([broken], instance=instance, raise_on_error=False).success
        covered = log_coverage(instance, since=before)
        assert (covered.runs, covered.runs_covered, covered.steps, covered.steps_covered) == (2, 2, 2, 2)
        assert covered.share == 1.0 and covered.gaps == []

        # A run recorded as finished with nothing in its log (a launcher that lost it) is a gap.
        silent = dg.DagsterRun(job_name="lost_job", run_id="0" * 36, status=dg.DagsterRunStatus.FAILURE)
        instance.add_run(silent)
        found = log_coverage(instance, since=before)
    assert (found.runs, found.runs_covered) == (3, 2) and found.share == 4 / 5
    assert found.gaps == [f"run {'0' * 36} (lost_job): no start, outcome, error"]
