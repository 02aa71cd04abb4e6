"""The plan-sized executor: a run of one step runs it in the run's process, a run of several forks step processes
from a fork server, and retries work in both."""

import os

import dagster as dg
import pytest

from sensors.executor import plan_sized_executor

# A run tag, not the environment: the fork server outlives a run in this test process, with the environment it
# started with.
ATTEMPTS_FILE = "test/attempts_file"


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def where(context: dg.OpExecutionContext) -> int:
    # A first attempt that fails (when asked to): the retry must run under the same executor.
    path = context.run.tags.get(ATTEMPTS_FILE)
    if path and not os.path.exists(path):
        open(path, "w").close()
        raise dg.RetryRequested(max_retries=1)
    context.add_output_metadata({"pid": os.getpid()})
    return os.getpid()


@dg.op
def where_else(context: dg.OpExecutionContext, upstream: int) -> int:
    context.add_output_metadata({"pid": os.getpid()})
    return os.getpid()


@dg.job(executor_def=plan_sized_executor)
def one_step():
    where()


@dg.job(executor_def=plan_sized_executor)
def two_steps():
    where_else(where())


def step_pids(result) -> dict[str, int]:
    return {event.step_key: event.event_specific_data.metadata["pid"].value
            for event in result.all_events if event.event_type_value == "STEP_OUTPUT"}


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def test_a_run_of_one_step_runs_it_in_the_run_process(instance):
    with dg.execute_job(dg.reconstructable(one_step), instance=instance) as result:
        assert result.success
        pids = step_pids(result)
        assert pids == {"where": os.getpid()}  # execute_job runs the run in this process


def test_a_run_of_several_steps_runs_each_in_a_forked_process(instance):
    with dg.execute_job(dg.reconstructable(two_steps), instance=instance) as result:
        assert result.success
        pids = step_pids(result)
        assert set(pids) == {"where", "where_else"}
        assert os.getpid() not in pids.values()
        messages = [e.message for e in instance.all_logs(result.run_id) if e.message]
        assert any("multiprocess executor" in m for m in messages)


def test_in_process_false_starts_a_step_process_even_for_one_step(instance):
    config = {"execution": {"config": {"in_process": False}}}
    with dg.execute_job(dg.reconstructable(one_step), instance=instance, run_config=config) as result:
        assert result.success
        assert os.getpid() not in step_pids(result).values()


@pytest.mark.parametrize("job", [one_step, two_steps])
def test_a_step_is_retried_under_either_executor(job, instance, tmp_path):
    tags = {ATTEMPTS_FILE: str(tmp_path / f"{job.name}.attempted")}
    with dg.execute_job(dg.reconstructable(job), instance=instance, tags=tags) as result:
        assert result.success
        retried = [e for e in instance.all_logs(result.run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"]
        assert [e.step_key for e in retried] == ["where"]


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01"))
def january_day(context) -> None:
    context.log.info("ran")


january = dg.Definitions(assets=[january_day], jobs=[dg.define_asset_job("january", executor_def=plan_sized_executor)])


def january_job():
    return january.resolve_job_def("january")


@pytest.mark.parametrize("tags", [
    {"dagster/partition": "2024-03-05"},
    {"dagster/asset_partition_range_start": "2024-01-30", "dagster/asset_partition_range_end": "2024-02-02"},
])
def test_a_run_for_partitions_that_no_longer_exist_fails_saying_what_changed(instance, tags):
    with dg.execute_job(dg.reconstructable(january_job), instance=instance, tags=tags) as result:
        assert not result.success
        [failure] = [e for e in instance.all_logs(result.run_id) if e.dagster_event and e.dagster_event.is_run_failure]
        message = failure.dagster_event.event_specific_data.error.message if failure.dagster_event.event_specific_data \
            and failure.dagster_event.event_specific_data.error else failure.message
        missing = tags.get("dagster/partition", "2024-02-02")
        assert f"january_day has no partition {missing} any more: its daily partitions are now 2024-01-01 to " \
               "2024-01-31" in message
        assert "Nothing was run" in message
        assert not [e for e in instance.all_logs(result.run_id) if e.message == "ran"]
