"""What a run costs besides its work: a one-partition run end to end against the step's own compute, and the code
location's import against `import dagster` alone.

1. **Code location import**: a fresh interpreter importing `sensors.definitions` and building every
   project's definitions (what each code server and run worker does first), against one importing `dagster`
   alone; medians of `--repeat`. Goals: at most 3 s, and at most 1.5x `import dagster`.
2. **One-partition run**: on the dev stack (`mining-platform dev` in a fresh `MINING_HOME` on free ports, sensors
   and schedules stopped so the runs are the bench's own), one demo day is written, then `churn/tiles/
   user_activity` for that day is materialised `--repeat` times through the webserver's GraphQL API (what the
   UI's Materialize does). Each run's launch-to-success time is set against the compute its partition run recorded
   in `pipeline_runs` (`execution_stats.duration_seconds`); medians. Goal: at most 1.5x the compute + 3 s. The same
   runs with a step process (`execution: {config: {in_process: false}}`, a step forked from the fork server) are
   printed beside them.

    .venv/bin/python -m bench.run_start [--repeat 5] [--keep HOME]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymongo import MongoClient

from bench.concurrency import stop_automation
from bench.walkthrough import LAUNCH, REPO, RUN_STATUS, Dagster, stack_environment, stop_stack

PROJECT = "churn"
DAY = "2024-01-01"
TILES = f"{PROJECT}/tiles/user_activity"
IMPORT_GOAL_SECONDS, IMPORT_GOAL_RATIO = 3.0, 1.5
RUN_GOAL_RATIO, RUN_GOAL_SECONDS = 1.5, 3.0


def import_seconds(statement: str, repeat: int) -> float:
    """Median wall time of a fresh interpreter running `statement`."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=REPO, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def launch_and_wait(dagster: Dagster, asset: str, *, partition: str, config: dict | None = None) -> tuple[str, float]:
    """(run id, seconds from the launch call to SUCCESS), polling the run's status every 0.2 s."""
    params = {
        "selector": {"repositoryLocationName": PROJECT, "repositoryName": "__repository__",
                     "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": asset.split("/")}]},
        "runConfigData": config or {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    started = time.perf_counter()
    result = dagster.query(LAUNCH, p=params)["launchPipelineExecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"materialising {asset} refused: {result}")
    run_id = result["run"]["runId"]
    while (status := dagster.query(RUN_STATUS, id=run_id)["runOrError"]["status"]) not in (
            "SUCCESS", "FAILURE", "CANCELED"):
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    if status != "SUCCESS":
        raise RuntimeError(f"run {run_id} materialising {asset} ended {status}")
    return run_id, elapsed


def compute_seconds(mongo_uri: str, run_id: str) -> float:
    """The partition run's own duration, as `pipeline_runs` recorded it for the Dagster run."""
    with MongoClient(mongo_uri, tz_aware=True) as client:
        record = client[f"mining_{PROJECT}"]["pipeline_runs"].find_one({"dagster_run_id": run_id})
    if record is None:
        raise RuntimeError(f"no pipeline_runs record of Dagster run {run_id}")
    return float(record["execution_stats"]["duration_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="use this MINING_HOME and keep it (default: a temporary one)")
    args = parser.parse_args()

    projects = sorted(p.parent.name for p in (REPO / "projects").glob("*/project.yaml"))
    location = import_seconds("import sensors.definitions as d\n" + "\n".join(f"d.{p}" for p in projects),
                              args.repeat)
    dagster_alone = import_seconds("import dagster", args.repeat)
    print(f"run_start: code location import ({', '.join(projects)}), medians of {args.repeat}")
    print(f"  import dagster alone                 {dagster_alone:6.2f} s")
    print(f"  code location (every project built)  {location:6.2f} s   {location / dagster_alone:.2f}x dagster "
          f"(goal <= {IMPORT_GOAL_RATIO}x, <= {IMPORT_GOAL_SECONDS:.0f} s): "
          f"{'met' if location <= IMPORT_GOAL_SECONDS and location / dagster_alone <= IMPORT_GOAL_RATIO else 'MISSED'}")

    home = args.keep or Path(tempfile.mkdtemp(prefix="bench-run-start-"))
    home.mkdir(parents=True, exist_ok=True)
    env, ports = stack_environment(home)
    log = home / "dev.log"
    stack = subprocess.Popen([str(REPO / ".venv" / "bin" / "mining-platform"), "dev"], cwd=REPO, env=env,
                             stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while "dev stack is ready" not in log.read_text():
            if stack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dev stack did not start; see {log}")
            time.sleep(1)
        dagster = Dagster(ports["dagster"])
        stop_automation(dagster, [PROJECT], settle=35.0)
        admin = subprocess.run([str(REPO / ".venv" / "bin" / "mining-platform"), "mongo-uri"], env=env, cwd=REPO,
                               check=True, capture_output=True, text=True).stdout.strip()
        launch_and_wait(dagster, f"{PROJECT}/demo/user_events", partition=DAY)
        launch_and_wait(dagster, TILES, partition=DAY)  # warms the code server and the MongoDB caches
        rows = {}
        for name, config in (("in the run worker (default)", None),
                             ("in a step process (in_process: false)",
                              {"execution": {"config": {"in_process": False}}})):
            walls, computes = [], []
            for _ in range(args.repeat):
                run_id, wall = launch_and_wait(dagster, TILES, partition=DAY, config=config)
                walls.append(wall)
                computes.append(compute_seconds(admin, run_id))
            rows[name] = (statistics.median(walls), statistics.median(computes))
        print(f"one-partition run: {TILES} {DAY}, launch to SUCCESS against the partition's compute in "
              f"pipeline_runs, medians of {args.repeat}")
        for name, (wall, compute) in rows.items():
            goal = RUN_GOAL_RATIO * compute + RUN_GOAL_SECONDS
            verdict = ("met" if wall <= goal else "MISSED") if name.endswith("(default)") else "context"
            print(f"  {name:<40} {wall:6.2f} s for {compute:5.2f} s of compute: overhead {wall - compute:5.2f} s "
                  f"(goal <= 1.5x + 3 s = {goal:.2f} s): {verdict}")
    finally:
        stop_stack(stack)
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
