"""Soak: the endpoint under load with hostile bodies mixed in and a reload every second; then a SIGKILLed run.

Setup as `bench.serving`: the embedded MongoDB with authentication, a local MLflow store,
two versions of `churn_xgb` (churn's features, synthetic rows), the endpoint as its own
process (`mining-platform serve`).

1. Baseline: good single-row requests on `CONNECTIONS` connections for `--duration` seconds.
2. Soak, the same good load for the same time, plus: one connection cycling through
   hostile bodies (deep nesting, a 5,000-digit integer, an entity id beyond int64, a
   text/plain body, 5 MiB, invalid JSON, unknown keys, …), a few clients that send half
   a body and stall (slow-body connections), and the champion moved and reloaded every
   second. Reported: 5xx seen (goal 0), good requests failed (goal 0), hostile inputs
   tried and refused with a 4xx naming the problem, stalled bodies cut off with 408, the
   endpoint's RSS before and after, and good-request throughput as a ratio to the baseline.
3. A feature run SIGKILLed while RUNNING: seconds until the same partition can be built
   again (the lease, renewed by the run's heartbeat, runs out; the next run reclaims it).

    .venv/bin/python -m bench.soak [--duration 30]
"""

import argparse
import asyncio
import copy
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from mlflow import MlflowClient
from pymongo import MongoClient

from bench.serving import TOKEN, start, wait_for
from mining_platform.registry import aliases
from mining_platform.settings import console_script
from mining_platform.spec.feature_files import load_feature_definitions
from mining_platform.spec.project import load_project
from mining_platform.tools.embedded_mongo import free_port, secured_server
from tests.fixtures.model_versions import register_synthetic_version

REPO = Path(__file__).resolve().parents[1]
CONNECTIONS = 6
STALLED = 8
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
JSON = "application/json"
QUIET = logging.getLogger("bench.soak.rerun")  # the reruns refused while the killed run's lease holds
QUIET.setLevel(logging.CRITICAL)


def hostile_bodies() -> list[tuple[str, bytes, str]]:
    """(what, body, content type): every one must be answered 4xx with a `detail`."""
    row = {"events_7d": 1}
    return [
        ("nesting 100,000 deep (200 KB)", b"[" * 100_000 + b"]" * 100_000, JSON),
        ("an integer of 5,000 digits", b'{"rows": [{"events_7d": ' + b"9" * 5000 + b"}]}", JSON),
        ("an entity id beyond int64", json.dumps({"entities": [2**70]}).encode(), JSON),
        ("text/plain (a cross-site simple POST)", json.dumps({"rows": [row]}).encode(), "text/plain"),
        ("form encoded", b"rows=1", "application/x-www-form-urlencoded"),
        ("5 MiB of JSON", b'{"rows": [' + b'{"events_7d": 1},' * 300_000 + b'{}]}', JSON),
        ("invalid JSON", b"{rows: [", JSON),
        ("unknown keys", json.dumps({"rows": [row], "debug": True}).encode(), JSON),
        ("rows not a list", json.dumps({"rows": row}).encode(), JSON),
        ("a feature as text", json.dumps({"rows": [{"events_7d": "many"}]}).encode(), JSON),
        ("NaN literal", b'{"rows": [{"events_7d": NaN}]}', JSON),
        ("over the batch limit", json.dumps({"entities": list(range(5000))}).encode(), JSON),
        ("both rows and entities", json.dumps({"rows": [row], "entities": ["u"]}).encode(), JSON),
        ("a JSON list", b"[1, 2, 3]", JSON),
    ]


class Tally:
    def __init__(self):
        self.good = self.good_failed = self.server_errors = self.hostile = 0
        self.refused: dict[str, set[int]] = {}
        self.unclear: list[str] = []
        self.lock = threading.Lock()


async def good_load(url: str, body: bytes, deadline: float, tally: Tally) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while time.perf_counter() < deadline:
            try:
                response = await client.post(url, content=body, headers={"Content-Type": JSON})
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            tally.good += 1
            tally.good_failed += status != 200
            tally.server_errors += status >= 500


async def hostile_load(url: str, deadline: float, tally: Tally) -> None:
    bodies = hostile_bodies()
    async with httpx.AsyncClient(timeout=30) as client:
        number = 0
        while time.perf_counter() < deadline:
            what, body, kind = bodies[number % len(bodies)]
            number += 1
            try:
                response = await client.post(url, content=body, headers={"Content-Type": kind})
            except httpx.HTTPError as exc:
                tally.unclear.append(f"{what}: connection error {type(exc).__name__}")
                continue
            tally.hostile += 1
            tally.server_errors += response.status_code >= 500
            tally.refused.setdefault(what, set()).add(response.status_code)
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = None
            if not 400 <= response.status_code < 500 or not detail:
                tally.unclear.append(f"{what}: {response.status_code} {response.text[:80]!r}")


def stalled_body(port: int, path: str) -> int | None:
    """Headers and half a body, then nothing: the status the endpoint answers with (None: it never did)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nContent-Length: 100\r\n\r\n{{".encode())
        try:
            answer = sock.recv(200).decode(errors="replace")
        except TimeoutError:
            return None
    return int(answer.split()[1]) if answer.startswith("HTTP/") else None


def reloader(client: MlflowClient, model_name: str, versions: list[str], url: str, stop: threading.Event,
             counts: dict) -> None:
    number = 0
    with httpx.Client(timeout=30) as http:
        while not stop.wait(1.0):
            number += 1
            aliases.promote_to_champion(client, model_name, versions[number % 2])
            response = http.post(f"{url}/v1/churn/reload", headers=ADMIN)
            counts["reloads"] += 1
            counts["reload_failed"] += response.status_code != 200


def run_load(url: str, port: int, body: bytes, duration: float, *, hostile: bool) -> Tally:
    tally = Tally()

    async def run() -> None:
        deadline = time.perf_counter() + duration
        tasks = [good_load(url, body, deadline, tally) for _ in range(CONNECTIONS)]
        if hostile:
            tasks.append(hostile_load(url, deadline, tally))
        await asyncio.gather(*tasks)

    stalled: list[int | None] = []
    threads = [threading.Thread(target=lambda: stalled.append(stalled_body(port, "/v1/churn/predict")))
               for _ in range(STALLED if hostile else 0)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    asyncio.run(run())
    tally.elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join(timeout=60)
    tally.stalled = stalled
    return tally


COUNTS = {
    "name": "event_counts", "version": 1, "description": "Events per user over three days.", "owner": "bench",
    "source": "user_events", "window_days": 3,
    "pipeline": [{"$match": {"timestamp": {"$gte": {"$param": "window_start"}, "$lt": {"$param": "as_of"}}}},
                 {"$group": {"_id": "$user_id", "events": {"$sum": 1}}}],
    "features": {"events": {"type": "int", "min": 1}},
}
KILLED_RUN = """
import datetime as dt, sys
from pathlib import Path
from mining_platform.features.pipeline import run_feature_pipeline
from resources import MongoResource
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.project import load_project
import json
project = load_project(Path(sys.argv[1]))
definition = FeatureDefinition.model_validate(json.loads(sys.argv[2]))
mongo = MongoResource(uri=sys.argv[3], database="soak")
as_of = dt.datetime(2024, 1, 6, tzinfo=dt.timezone.utc)
run_feature_pipeline(db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
                     sources=mongo.analytics_db(), project=project, definition=definition,
                     partitions=[("2024-01-05", as_of)], dagster_run_id=None, max_time_ms=600_000)
"""


def reclaim_after_kill(mongo_uri: str, scratch: Path) -> float:
    """Seconds from SIGKILLing a RUNNING feature run to the same partition being built again."""
    from mining_platform.features.pipeline import run_feature_pipeline
    from mining_platform.spec.definition import FeatureDefinition
    from resources import MongoResource

    project = load_project(REPO / "projects" / "churn")
    mongo = MongoResource(uri=mongo_uri, database="soak")
    events = mongo.demo_db("churn")["user_events"]
    day = dt.datetime(2024, 1, 3, tzinfo=dt.timezone.utc)
    events.insert_many([{"user_id": f"u{i % 5000}", "timestamp": day + dt.timedelta(seconds=i), "event_type": "click"}
                        for i in range(60_000)])
    definition = copy.deepcopy(COUNTS)
    worker = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(REPO / "projects" / "churn"), json.dumps(definition),
                               mongo_uri], cwd=REPO, stdout=subprocess.DEVNULL, stderr=(scratch / "killed.log").open("w"))
    runs = MongoClient(mongo_uri)["soak_churn"]["pipeline_runs"]
    deadline = time.monotonic() + 120
    while runs.find_one({"status": "RUNNING"}) is None:
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError("the feature run never reached RUNNING: " + (scratch / "killed.log").read_text()[-2000:])
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    killed = time.monotonic()
    worker.wait()
    as_of = dt.datetime(2024, 1, 6, tzinfo=dt.timezone.utc)
    while True:
        report = run_feature_pipeline(
            db=mongo.project_db("churn"), analytics=mongo.analytics_project_db("churn"), sources=mongo.analytics_db(),
            project=project, definition=FeatureDefinition.model_validate(definition),
            partitions=[("2024-01-05", as_of)], dagster_run_id=None, max_time_ms=600_000, log=QUIET)
        if not report.failed:
            return time.monotonic() - killed
        if "is being built by run" not in (report.failed[0].error or ""):
            raise RuntimeError(f"the rerun failed otherwise: {report.failed[0].error}")
        time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the baseline and of the soak")
    args = parser.parse_args()

    project = load_project(REPO / "projects" / "churn")
    features = [f for d in load_feature_definitions(REPO / "projects" / "churn", project) for f in d.features]
    scratch = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    with secured_server(scratch / "mongo") as mongo_uri:
        tracking = f"sqlite:///{scratch / 'mlflow.db'}"
        versions = [register_synthetic_version(
            tracking_uri=tracking, artifact_location=str(scratch / "artifacts"), model_name=project.model.name,
            features=features, seed=seed, project="churn", rows=5_000, max_depth=6, rounds=100) for seed in (1, 2)]
        client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
        aliases.promote_to_champion(client, project.model.name, versions[0].version)
        port = free_port()
        env = {**os.environ, "MINING_MONGO_URI": mongo_uri, "MINING_MONGO_DB": "soak", "MLFLOW_TRACKING_URI": tracking,
               "MLFLOW_REGISTRY_URI": tracking, "MINING_ADMIN_TOKEN": TOKEN,
               "MINING_PROJECTS_DIR": str(REPO / "projects"), "MINING_HOME": str(scratch / "home"),
               "MINING_PREDICTION_LOG_SAMPLE_RATE": "0.1"}
        server = start(scratch / "endpoint.log", env, [console_script("mining-platform"), "serve", "--port", str(port)])
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/health", lambda r: r.json()["projects"]["churn"].get("version") == versions[0].version,
                     "the endpoint", scratch / "endpoint.log")
            predict = f"{url}/v1/churn/predict"
            body = json.dumps({"rows": [{f: 1.0 for f in features}]}).encode()
            process = psutil.Process(server.pid)
            run_load(predict, port, body, 5, hostile=False)  # warm-up
            baseline = run_load(predict, port, body, args.duration, hostile=False)
            rss_before = process.memory_info().rss
            stop, counts = threading.Event(), {"reloads": 0, "reload_failed": 0}
            reloads = threading.Thread(target=reloader, args=(client, project.model.name,
                                                              [v.version for v in versions], url, stop, counts))
            reloads.start()
            soak = run_load(predict, port, body, args.duration, hostile=True)
            stop.set()
            reloads.join()
            rss_after = process.memory_info().rss
        finally:
            server.terminate()
            server.wait(timeout=30)
        reclaimed = reclaim_after_kill(mongo_uri, scratch)

    base_rps, soak_rps = baseline.good / baseline.elapsed, soak.good / soak.elapsed
    print(f"soak {args.duration:.0f}s, {CONNECTIONS} good connections, 1 hostile, {STALLED} stalled bodies, "
          f"a reload every second:")
    print(f"  good requests: {soak.good} ({soak_rps:.0f}/s = {soak_rps / base_rps:.2f}x the baseline's "
          f"{base_rps:.0f}/s without hostile load or reloads), failed: {soak.good_failed} (goal 0)")
    print(f"  5xx seen: {soak.server_errors} (goal 0); reloads: {counts['reloads']}, failed: {counts['reload_failed']}")
    print(f"  hostile inputs: {len(soak.refused)} kinds, {soak.hostile} requests, every one a 4xx with a detail: "
          f"{'yes' if not soak.unclear else 'NO'}")
    for what, statuses in sorted(soak.refused.items()):
        print(f"    {what}: {', '.join(map(str, sorted(statuses)))}")
    for problem in soak.unclear[:10]:
        print(f"    UNCLEAR {problem}")
    print(f"  stalled bodies: {sum(s == 408 for s in soak.stalled)} of {len(soak.stalled)} answered 408")
    print(f"  endpoint RSS: {rss_before / 2**20:.0f} MiB before the soak, {rss_after / 2**20:.0f} MiB after "
          f"({(rss_after - rss_before) / rss_before:+.1%})")
    print(f"  a SIGKILLed feature run: the partition was built again {reclaimed:.0f}s after the kill "
          f"(lease {60}s, renewed every 15s)")
    return 0 if not soak.server_errors and not soak.good_failed and not soak.unclear else 1


if __name__ == "__main__":
    sys.exit(main())
