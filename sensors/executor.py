"""The executor every project's jobs run with: no process start a run does not need.

A run of one step (a feature day, a backfill of one asset in one run, a deployment, a
report) runs that step in the run worker itself, which has the code location loaded
already: Dagster's in-process executor. A run of several steps runs them with Dagster's
multiprocess executor, each step in its own process (a step that crashes or runs out of
memory takes only itself down, and independent steps run side by side), forked from a
`forkserver` that has imported the code location once, so a step starts in a fraction of
a second instead of importing Dagster and the platform again.

Both are Dagster's own executors, chosen per run from the plan; run config
(`execution: {config: {...}}`) sets the multiprocess side's `max_concurrent` and the
modules the fork server preloads, or `in_process: false` for a step process even for one
step.
"""

from collections.abc import Iterator

import dagster as dg

from mining_platform.spec.tags import PARTITION_TAG, RANGE_TAGS

# What the fork server imports before forking step processes: the code location (Dagster itself and the light
# core). Heavy libraries load in the steps that use them.
PRELOAD = ["sensors.definitions"]




def vanished_partitions(run: dg.DagsterRun, job: dg.JobDefinition) -> str | None:
    """Why a run cannot start when the partitions it was launched for no longer exist, or None.

    A run queued (or retried) after the project's start_date or end_date moved would fail deep inside Dagster
    with an invariant error; this says what changed and what to do, before any step runs.
    """
    keys = [run.tags[tag] for tag in (PARTITION_TAG, *RANGE_TAGS) if tag in run.tags]
    if not keys:
        return None
    graph = job.asset_layer.asset_graph
    selected = run.asset_selection or {key for key in graph.get_all_asset_keys() if graph.get(key).is_executable}
    for key in sorted(selected, key=lambda k: k.to_user_string()):
        partitions = graph.get(key).partitions_def if graph.has(key) else None
        if not isinstance(partitions, dg.TimeWindowPartitionsDefinition):
            continue
        missing = [k for k in dict.fromkeys(keys) if not partitions.has_partition_key(k)]
        if missing:
            first, last = partitions.get_first_partition_key(), partitions.get_last_partition_key()
            return (f"{key.to_user_string()} has no partition {', '.join(missing)} any more: its daily partitions are "
                    f"now {first} to {last}. The project's start_date or end_date changed after this run was "
                    "launched (and the code location was reloaded). Nothing was run: launch the days that exist "
                    "again (the backfill dialog offers only those), or restore the dates in project.yaml.")
    return None


class PlanSizedExecutor(dg.Executor):
    """Dagster's in-process executor for a plan of one step, its multiprocess executor for more."""

    def __init__(self, in_process: dg.Executor, multiprocess: dg.Executor, *, single_step_in_process: bool):
        self._in_process = in_process
        self._multiprocess = multiprocess
        self._single_step_in_process = single_step_in_process

    def execute(self, plan_context, execution_plan) -> Iterator:
        vanished = vanished_partitions(plan_context.dagster_run, plan_context.job.get_definition())
        if vanished:
            raise dg.Failure(vanished, allow_retries=False)
        one_step = len(execution_plan.step_keys_to_execute) == 1
        chosen = self._in_process if one_step and self._single_step_in_process else self._multiprocess
        yield from chosen.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._multiprocess.retries

    @property
    def step_dependency_config(self):
        return self._multiprocess.step_dependency_config


@dg.executor(
    name="plan_sized",
    config_schema={
        "in_process": dg.Field(bool, default_value=True,
                               description="Run a plan of one step in the run worker (no step process)."),
        "max_concurrent": dg.Field(int, default_value=0,
                                   description="Step processes at once for a plan of several steps (0: one per CPU)."),
        "preload_modules": dg.Field([str], default_value=PRELOAD,
                                    description="Modules the fork server imports before forking step processes."),
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def plan_sized_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    config = init_context.executor_config
    retries = {"retries": {"enabled": {}}}
    in_process = dg.in_process_executor.executor_creation_fn(init_context._replace(executor_config=retries))
    multiprocess = dg.multiprocess_executor.executor_creation_fn(init_context._replace(executor_config={
        **retries, "max_concurrent": config["max_concurrent"] or None,
        "start_method": {"forkserver": {"preload_modules": list(config["preload_modules"])}},
    }))
    return PlanSizedExecutor(in_process, multiprocess, single_step_in_process=config["in_process"])
