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

# What the fork server imports before forking step processes: the code location (Dagster itself and the light
# core). Heavy libraries load in the steps that use them.
PRELOAD = ["mining_platform.definitions"]


class PlanSizedExecutor(dg.Executor):
    """Dagster's in-process executor for a plan of one step, its multiprocess executor for more."""

    def __init__(self, in_process: dg.Executor, multiprocess: dg.Executor, *, single_step_in_process: bool):
        self._in_process = in_process
        self._multiprocess = multiprocess
        self._single_step_in_process = single_step_in_process

    def execute(self, plan_context, execution_plan) -> Iterator:
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
