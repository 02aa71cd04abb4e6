"""50 pipelines queued at once across projects, on the dev stack with the production instance's run queue and pools.

Starts `mining-platform dev` in a fresh `MINING_HOME` whose dagster.yaml takes the run
coordinator, run limits (50 at once, 10 per project by `dagster/code_location`), pool
limits (`mongodb`: 8 steps at once) and run monitoring of deploy/dagster/dagster.yaml. The
launcher stays local; Dagster's storage is PostgreSQL as in production (a throwaway cluster
on loopback, from Debian's `postgresql` package), or with `--storage sqlite` the dev
stack's own. Five projects, copies of churn each with its own demo source, each get ten
pipelines: one demo day with its two tile sets (three steps, all in
the `mongodb` pool). Sensors are stopped, so the runs are the bench's own, and each
project's first run (a day of its own) warms its code location before the passes.

1. **Concurrent**: the 50 runs are launched at once through GraphQL (what the UI does)
   and queue; the bench waits for all.
2. **Serial baseline**: the same 50 runs again, one after the other (the same work: a
   demo day and its tiles are replaced, not added).

From the run and event records it checks: every pipeline has exactly one successful run
per pass and every (asset, partition) one materialisation per pass (nothing lost or run
twice); at most 50 runs and 10 per project were in progress at once; at most 8 steps of
the `mongodb` pool ran at once. Prints throughput (pipelines per minute) of both passes and
their ratio.

    .venv/bin/python -m bench.concurrency [--projects 5] [--days 10] [--users 100] [--storage postgres|sqlite]
                                          [--keep HOME]

On SQLite the bench saw 9 `mongodb` steps at once against a limit of 8 (README, benchmark
notes): Dagster claims a slot with `SELECT … FOR UPDATE SKIP LOCKED` and an unguarded
`UPDATE`, and SQLite has no row locks, so two run processes can likely take the same slot.
"""

import argparse
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml

from assets import pools
from bench.walkthrough import LAUNCH, REPO, Dagster, free_port, stack_environment, stop_stack

SENSORS = """query($selector: RepositorySelector!) { sensorsOrError(repositorySelector: $selector) {
  ... on Sensors { results { id name sensorState { status } } } } }"""
STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) { __typename ... on PythonError { message } } }"""
SCHEDULES = """query($selector: RepositorySelector!) { schedulesOrError(repositorySelector: $selector) {
  ... on Schedules { results { name scheduleState { id status } } } } }"""
STOP_SCHEDULE = """mutation($id: String!) { stopRunningSchedule(id: $id) { __typename ... on PythonError { message } } }"""
RUN_STATUSES = """query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
  ... on Runs { results { runId status } } } }"""


def production_instance(postgres_port: int | None) -> str:
    """deploy/dagster/dagster.yaml's queue, limits, pools and monitoring, with PostgreSQL storage on this machine
    (`postgres_port`) or the dev stack's SQLite (None). The launcher stays local."""
    production = yaml.safe_load((REPO / "deploy" / "dagster" / "dagster.yaml").read_text())
    local = {key: production[key] for key in ("run_coordinator", "concurrency", "run_monitoring", "run_retries")}
    if postgres_port is not None:
        local["storage"] = {"postgres": {"postgres_db": {"hostname": "127.0.0.1", "port": postgres_port,
                                                         "username": "postgres", "password": "", "db_name": "dagster",
                                                         "scheme": "postgresql+psycopg2"}}}
    return yaml.safe_dump({"telemetry": {"enabled": False}, **local}, sort_keys=False)


POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def start_postgres(home: Path) -> tuple[int, Callable[[], None]]:
    """A throwaway PostgreSQL cluster on a free loopback port, as production's Dagster storage (Debian's
    `postgresql` package; the server refuses to run as root, so it runs as the `postgres` user)."""
    if not POSTGRES_BIN:
        raise SystemExit("--storage postgres needs PostgreSQL's server: apt-get install postgresql")
    binaries, port = POSTGRES_BIN[-1], free_port()
    # Not under `home`: MINING_HOME is private to its owner (0700), and the server runs as another user.
    base = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run([*as_postgres, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=400", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*as_postgres, str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    "dagster"], check=True)

    def stop() -> None:
        subprocess.run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(base, ignore_errors=True)

    return port, stop


def make_projects(root: Path, count: int, users: int) -> list[str]:
    names = []
    for i in range(1, count + 1):
        name = f"team{i}"
        shutil.copytree(REPO / "projects" / "churn", root / name)
        path = root / name / "project.yaml"
        config = yaml.safe_load(path.read_text())
        config["name"] = name
        config["model"]["name"] = f"{name}_xgb"
        config["sources"]["user_events"]["collection"] = f"{name}_events"  # each team its own demo source
        config["demo"]["users"] = users
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        names.append(name)
    return names


def launch(dagster: Dagster, project: str, day: str, batch: str) -> str:
    assets = [f"{project}/demo/user_events", f"{project}/tiles/user_activity", f"{project}/tiles/module_preferences"]
    params = {
        "selector": {"repositoryLocationName": project, "repositoryName": "__repository__",
                     "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": a.split("/")} for a in assets]},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day},
                                       {"key": "bench/batch", "value": batch}]},
    }
    result = dagster.query(LAUNCH, p=params)["launchPipelineExecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launching {project} {day} refused: {result}")
    return result["run"]["runId"]


def wait_all(dagster: Dagster, run_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = {r["runId"]: r["status"] for r in dagster.query(RUN_STATUSES, ids=run_ids)["runsOrError"]["results"]}
        if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()) and len(statuses) == len(run_ids):
            return statuses
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sum(s not in ('SUCCESS', 'FAILURE', 'CANCELED') for s in statuses.values())} runs "
                               "still in flight")
        time.sleep(2)


def stop_automation(dagster: Dagster, projects: list[str], settle: float = 45.0, rounds: int = 8) -> int:
    """Stop every sensor and schedule of the projects: the runs are the bench's own.

    A stop can be undone: as the stack comes up, the daemon writes each sensor's first state,
    and on PostgreSQL that write is an upsert that overwrites a stop landing at that moment
    (seen: one automation sensor kept launching runs). So stop, wait longer than a tick's
    interval, and check again, until a check finds none running. Returns how many were stopped."""
    stopped = _stop_running(dagster, projects)
    for _ in range(rounds):
        time.sleep(settle)
        running = _stop_running(dagster, projects)
        if not running:
            return len(stopped)
        stopped |= running
    raise RuntimeError(f"sensors or schedules kept running after {rounds} stops: {sorted(running)}")


def _stop_running(dagster: Dagster, projects: list[str]) -> set[str]:
    """Stop the projects' running sensors and schedules; their names."""
    stopped = set()
    for project in projects:
        selector = {"repositoryLocationName": project, "repositoryName": "__repository__"}
        # (name, status, the id its stop mutation takes, mutation, its field)
        instigators = [(s["name"], s["sensorState"]["status"], s["id"], STOP_SENSOR, "stopSensor")
                       for s in dagster.query(SENSORS, selector=selector)["sensorsOrError"]["results"]]
        instigators += [(s["name"], s["scheduleState"]["status"], s["scheduleState"]["id"], STOP_SCHEDULE,
                         "stopRunningSchedule")
                        for s in dagster.query(SCHEDULES, selector=selector)["schedulesOrError"]["results"]]
        for name, status, instigator_id, mutation, field in instigators:
            if status == "RUNNING":
                answer = dagster.query(mutation, id=instigator_id)[field]
                if answer["__typename"] == "PythonError":
                    raise RuntimeError(f"cannot stop {name}: {answer['message']}")
                stopped.add(name)
    return stopped


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine since boot, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def cpu_use(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The machine's CPU use between two cpu_ticks() readings, 0..1 of all cores."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1)


def peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = best = 0
    for _, change in events:
        open_now += change
        best = max(best, open_now)
    return best


def audit(home: Path, run_ids: list[str], projects: list[str]) -> dict:
    """What the instance's run and event records say about one pass."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        runs = [(r.dagster_run, r.start_time, r.end_time) for r in records]
        # The limits hold for every run of the instance, the bench's or not: count all that overlap the pass.
        first, last = min(s for _, s, _ in runs if s), max(e for _, _, e in runs if e)
        every = [(r.dagster_run, r.start_time, r.end_time) for r in instance.get_run_records()
                 if r.start_time and r.end_time and r.end_time >= first and r.start_time <= last]
        run_intervals = [(start, end) for _, start, end in every]
        per_project = {p: peak([(s, e) for run, s, e in every if run.tags.get("dagster/code_location") == p])
                       for p in projects}
        others = len(every) - len(runs)
        steps: dict[tuple[str, str], dict[str, float]] = {}
        materialized = Counter()
        for run, _, _ in every:
            run_id = run.run_id
            plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            pooled = {step.key for step in plan.steps if step.pool == pools.MONGODB}
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                if event is None:
                    continue
                if event.event_type_value in ("STEP_WORKER_STARTING", "STEP_START", "STEP_SUCCESS",
                                              "STEP_FAILURE") and event.step_key in pooled:
                    steps.setdefault((run_id, event.step_key), {}).setdefault(event.event_type_value, record.timestamp)
                if event.event_type_value == "ASSET_MATERIALIZATION" and run_id in run_ids:
                    materialization = event.step_materialization_data.materialization
                    materialized[(materialization.asset_key.to_user_string(), materialization.partition)] += 1
        # A step holds its pool slot from before its worker process starts until it ends: these intervals lie
        # within the slot's, so more of them at once than the limit would prove the limit broken.
        step_intervals = [(s.get("STEP_WORKER_STARTING", s["STEP_START"]), s.get("STEP_SUCCESS", s.get("STEP_FAILURE")))
                          for s in steps.values() if "STEP_START" in s]
        pool_limit = instance.get_concurrency_config().pool_config.default_pool_limit
    return {"runs": runs, "peak_runs": peak(run_intervals), "peak_per_project": per_project,
            "peak_steps": peak([i for i in step_intervals if i[1] is not None]), "pool_limit": pool_limit,
            "materialized": materialized, "steps": len(step_intervals), "other_runs": others}


def check(name: str, result: dict, pipelines: list[tuple[str, str]], statuses: dict[str, str]) -> list[str]:
    problems = []
    failed = [run_id for run_id, status in statuses.items() if status != "SUCCESS"]
    if failed:
        problems.append(f"{name}: {len(failed)} runs did not succeed: {failed[:5]}")
    seen = Counter((run.tags.get("dagster/code_location"), run.tags.get("dagster/partition"))
                   for run, _, _ in result["runs"])
    if set(seen) != set(pipelines) or any(count != 1 for count in seen.values()):
        problems.append(f"{name}: pipelines without exactly one run: "
                        f"{[p for p in pipelines if seen.get(p) != 1][:5]}")
    wanted = {(f"{project}/{asset}", day) for project, day in pipelines
              for asset in ("demo/user_events", "tiles/user_activity", "tiles/module_preferences")}
    counts = result["materialized"]
    if set(counts) != wanted or any(count != 1 for count in counts.values()):
        problems.append(f"{name}: materialisations not exactly once: "
                        f"{sorted(k for k in wanted if counts.get(k) != 1)[:5]}")
    if result["peak_steps"] > result["pool_limit"]:
        problems.append(f"{name}: {result['peak_steps']} mongodb steps at once, over the pool limit "
                        f"{result['pool_limit']}")
    if result["other_runs"]:
        problems.append(f"{name}: {result['other_runs']} runs the bench did not launch ran during the pass: the limits "
                        "counted them, but the throughput comparison is not clean")
    if result["peak_runs"] > 50 or max(result["peak_per_project"].values()) > 10:
        problems.append(f"{name}: run limits exceeded: {result['peak_runs']} at once, per project "
                        f"{result['peak_per_project']}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=5)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--users", type=int, default=100, help="demo users per project (SecantusDB is slow)")
    parser.add_argument("--storage", choices=["postgres", "sqlite"], default="postgres" if POSTGRES_BIN else "sqlite",
                        help="Dagster's storage: PostgreSQL as in production (default where its server is installed), "
                        "or the dev stack's SQLite, on which a pool slot claim is not atomic across processes")
    parser.add_argument("--keep", type=Path, help="use this MINING_HOME and keep it (default: a temporary one)")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    home.mkdir(parents=True, exist_ok=True)
    postgres_port, stop_postgres = start_postgres(home) if args.storage == "postgres" else (None, lambda: None)
    env, ports = stack_environment(home)
    projects_dir = home / "projects"
    projects_dir.mkdir(parents=True, exist_ok=True)
    projects = make_projects(projects_dir, args.projects, args.users)
    env["MINING_PROJECTS_DIR"] = str(projects_dir)
    # The dev stack reads workspace.yaml from where it starts: one code location per team project.
    (home / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": "sensors.definitions", "attribute": name, "location_name": name,
                           "working_directory": str(REPO)}} for name in projects]}, sort_keys=False))
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(production_instance(postgres_port))
    first = dt.date(2024, 1, 1)
    days = [(first + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    pipelines = [(project, day) for day in days for project in projects]
    log = home / "dev.log"
    stack = subprocess.Popen([str(REPO / ".venv" / "bin" / "mining-platform"), "dev"], cwd=home, env=env,
                             stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while "dev stack is ready" not in log.read_text():
            if stack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dev stack did not start; see {log}")
            time.sleep(1)
        dagster = Dagster(ports["dagster"])
        print(f"{len(pipelines)} pipelines ({len(projects)} projects x {len(days)} days; a demo day and its two tile "
              f"sets each), instance limits from deploy/dagster/dagster.yaml, {args.storage} storage; stopped "
              f"{stop_automation(dagster, projects)} sensors and schedules", flush=True)

        # Warm-up, not counted: each code location's first run, on a day of its own.
        warm_day = (first + dt.timedelta(days=args.days)).isoformat()
        warm = [launch(dagster, project, warm_day, "warm-up") for project in projects]
        wait_all(dagster, warm, timeout=1800)

        began, cpu_before = time.perf_counter(), cpu_ticks()
        concurrent_ids = [launch(dagster, project, day, "concurrent") for project, day in pipelines]
        concurrent_statuses = wait_all(dagster, concurrent_ids, timeout=3600)
        concurrent_seconds, concurrent_cpu = time.perf_counter() - began, cpu_use(cpu_before, cpu_ticks())
        print(f"  concurrent: {concurrent_seconds:7.1f} s", flush=True)

        began, cpu_before = time.perf_counter(), cpu_ticks()
        serial_ids, serial_statuses = [], {}
        for project, day in pipelines:
            run_id = launch(dagster, project, day, "serial")
            serial_ids.append(run_id)
            serial_statuses.update(wait_all(dagster, [run_id], timeout=600))
        serial_seconds, serial_cpu = time.perf_counter() - began, cpu_use(cpu_before, cpu_ticks())
        print(f"  serial:     {serial_seconds:7.1f} s", flush=True)
    finally:
        stop_stack(stack)

    try:
        concurrent, serial = audit(home, concurrent_ids, projects), audit(home, serial_ids, projects)
    finally:
        stop_postgres()
    problems = (check("concurrent", concurrent, pipelines, concurrent_statuses)
                + check("serial", serial, pipelines, serial_statuses))
    n = len(pipelines)
    print(f"\n{'pass':<12}{'seconds':>9}{'pipelines/min':>15}{'peak runs':>11}{'peak/project':>14}"
          f"{'peak mongodb steps':>20}{'machine CPU':>13}")
    for name, seconds, result, cpu in (("concurrent", concurrent_seconds, concurrent, concurrent_cpu),
                                       ("serial", serial_seconds, serial, serial_cpu)):
        print(f"{name:<12}{seconds:9.1f}{n / seconds * 60:15.2f}{result['peak_runs']:11d}"
              f"{max(result['peak_per_project'].values()):14d}{result['peak_steps']:14d} of {result['pool_limit']}"
              f"{cpu:12.0%}")
    print(f"machine CPU use while the {n} ran at once: {concurrent_cpu:.0%} of {os.cpu_count()} cores (the "
          "requirements ask >= 60 %; the embedded MongoDB and the Dagster daemon share the machine)")
    print(f"\nthroughput, concurrent / serial: {serial_seconds / concurrent_seconds:.2f}x; other runs during the "
          f"passes: {concurrent['other_runs']}, {serial['other_runs']}")
    if problems:
        raise SystemExit("FAILED:\n  " + "\n  ".join(problems))
    print("every pipeline ran once per pass, every partition materialised once, no limit exceeded")
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
