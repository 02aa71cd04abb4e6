"""The version hit rate across endpoint replicas under load, with promotions and rollbacks.

Setup as `bench.serving`: the embedded MongoDB with authentication, a local MLflow store with three versions of
`churn_xgb` (churn's features, synthetic rows), and `--replicas` endpoint processes (`mining-platform serve`, a
heartbeat a second) on one MongoDB, all following the project's serving record. A load of single-row requests
goes round-robin over the replicas at 8 connections while the deployer's own code (`ServingRecords`: set the
record, wait until every live replica serves it) moves the champion `--moves` times: forward to new versions and
back (rollbacks).

Each answer is judged against the serving record in force when its request was sent: before a move's record
was written, the old version; after every replica reported the new one (the deployer's wait returned), the new
one; in between (the swap window, each replica swapping on its own), either. Any other answer is a miss, listed
with its replica, time and version. Goal: hit rate >= 99.99 %, no failed request.

With `--restarts N`, N times during the load a replica is killed (SIGKILL, as an evicted pod dies) and started
again on its port. The load does what a Service and a retrying client do: a request whose replica does not
answer (connection refused or reset) goes to the next replica, and a restarted replica gets requests again once
its `/ready` (the chart's readiness probe) answers 200. Availability is the share of requests answered 200
(goal >= 99.99 %).

    .venv/bin/python -m bench.hit_rate [--replicas 3] [--moves 6] [--settle 3] [--restarts 2]
"""

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pymongo import MongoClient

from bench.serving import endpoint_env, start, stop_all, wait_for
from mining_platform.deployment.convergence import ServingRecords
from mining_platform.registry import aliases
from mining_platform.registry.client import client as mlflow_client
from mining_platform.settings import console_script
from mining_platform.spec.feature_files import load_feature_definitions
from mining_platform.spec.names import project_database
from mining_platform.spec.project import load_project
from mining_platform.tools.embedded_mongo import free_port, secured_server
from tests.fixtures.model_versions import register_synthetic_version

REPO = Path(__file__).resolve().parents[1]
CONNECTIONS = 8
GOAL = 0.9999


def load(urls: list[str], body: str, stop: threading.Event, answers: list, routable: list[bool]) -> None:
    """Round-robin single-row requests until `stop`: (sent at, replica, answered version or None, status). A
    replica that does not answer is skipped for the next one (status "failover" when all of them failed)."""
    import aiohttp

    async def run() -> None:
        turn = 0

        async def worker(session):
            nonlocal turn
            while not stop.is_set():
                first = turn % len(urls)
                turn += 1
                sent, error = time.time(), None
                for replica in [(first + k) % len(urls) for k in range(len(urls)) if routable[(first + k) % len(urls)]]:
                    try:
                        async with session.post(urls[replica], data=body,
                                                headers={"Content-Type": "application/json"}) as response:
                            payload = await response.json() if response.status == 200 else None
                            answers.append((sent, replica, (payload or {}).get("model", {}).get("version"),
                                            response.status))
                            break
                    except aiohttp.ClientConnectionError as exc:  # the replica is gone: the next one
                        error = f"{type(exc).__name__} on every replica"
                else:
                    answers.append((sent, first, None, error))

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))

    asyncio.run(run())


def judge(answers: list, moves: list[tuple[float, float, str, str]], first: str) -> tuple[int, list]:
    """Hits, and the misses, of answers against the moves (record written, all converged, from, to)."""
    hits, misses = 0, []
    for sent, replica, version, status in answers:
        if status != 200:
            continue
        allowed = {first}
        for written, converged, before, after in moves:
            if sent < written:
                break
            allowed = {before, after} if sent < converged else {after}
        if version in allowed:
            hits += 1
        else:
            misses.append({"sent": dt.datetime.fromtimestamp(sent, dt.timezone.utc).isoformat(), "replica": replica,
                           "answered": version, "expected": sorted(allowed)})
    return hits, misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--moves", type=int, default=6, help="champion moves (alternately forward and back)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load between moves")
    parser.add_argument("--restarts", type=int, default=2, help="replicas killed and restarted during the load")
    args = parser.parse_args()

    project = load_project(REPO / "projects" / "churn")
    features = [f for d in load_feature_definitions(REPO / "projects" / "churn", project) for f in d.features]
    model_name = project.model.name
    scratch = Path(tempfile.mkdtemp(prefix="bench-hit-rate-"))
    servers = []
    try:
        with secured_server(scratch / "mongo") as mongo_uri:
            tracking = f"sqlite:///{scratch / 'mlflow.db'}"
            versions = [register_synthetic_version(
                tracking_uri=tracking, artifact_location=str(scratch / "artifacts"), model_name=model_name,
                features=features, seed=seed, project="churn", rows=5000, max_depth=4, rounds=50).version
                for seed in (1, 2, 3)]
            aliases.promote_to_champion(mlflow_client(tracking), model_name, versions[0])
            env = {**endpoint_env(scratch, mongo_uri, tracking, REPO / "projects"),
                   "MINING_ENDPOINT_HEARTBEAT_SECONDS": "1", "MINING_PREDICTION_LOG_SAMPLE_RATE": "0"}
            ports = [free_port() for _ in range(args.replicas)]
            for i, port in enumerate(ports):
                servers.append(start(scratch / f"endpoint-{i}.log", env,
                                     [console_script("mining-platform"), "serve", "--port", str(port)]))
            for i, port in enumerate(ports):
                wait_for(f"http://127.0.0.1:{port}/health",
                         lambda r: r.json()["projects"]["churn"]["version"] == versions[0], f"replica {i}",
                         scratch / f"endpoint-{i}.log")
            client = MongoClient(mongo_uri, tz_aware=True)
            records = ServingRecords(client[project_database("bench", "churn")], model_name)
            written = records.set("champion", versions[0], set_by="bench", reason="start")
            records.wait("champion", versions[0], since=written, timeout_seconds=60)

            row = {f: round(float(v), 3) for f, v in zip(features, np.random.default_rng(5).gamma(2.0, 3.0,
                                                                                                   len(features)))}
            answers: list = []
            stop = threading.Event()
            urls = [f"http://127.0.0.1:{port}/v1/churn/predict" for port in ports]
            routable = [True] * len(urls)
            loader = threading.Thread(target=load, args=(urls, json.dumps({"rows": [row]}), stop, answers, routable))
            loader.start()
            time.sleep(args.settle)
            # Forward through the versions and back again: v1 -> v2 -> v3 -> v2 (rollback) -> v1 (rollback) -> ...
            path = versions + versions[-2:0:-1]
            moves, current = [], versions[0]
            restart_after = {round((k + 1) * args.moves / (args.restarts + 1)) for k in range(args.restarts)}
            restarted = 0
            for i in range(args.moves):
                if i in restart_after:  # one replica dies mid-load and comes back on its port
                    victim = restarted % len(servers)
                    routable[victim] = False  # from now on as the Service sees it: its readiness fails
                    servers[victim].kill()
                    servers[victim].wait()
                    servers[victim] = start(scratch / f"endpoint-{victim}-restart{restarted}.log", env, [
                        console_script("mining-platform"), "serve", "--port", str(ports[victim])])
                    began = time.monotonic()
                    wait_for(f"http://127.0.0.1:{ports[victim]}/ready", lambda r: r.status_code == 200,
                             f"replica {victim}", scratch / f"endpoint-{victim}-restart{restarted}.log")
                    routable[victim] = True
                    print(f"  replica {victim} killed and back serving v{current} after "
                          f"{time.monotonic() - began:.1f} s", flush=True)
                    restarted += 1
                target = path[(i + 1) % len(path)]
                written_at = time.time()
                since = records.set("champion", target, set_by="bench", reason=f"move {i + 1}")
                converged = records.wait("champion", target, since=since, timeout_seconds=60)
                moves.append((written_at, time.time(), current, target))
                print(f"  move {i + 1}: v{current} -> v{target}, every replica serving it after "
                      f"{converged.seconds * 1e3:.0f} ms", flush=True)
                current = target
                time.sleep(args.settle)
            stop.set()
            loader.join()
            client.close()

        failed = [a for a in answers if a[3] != 200]
        available = (len(answers) - len(failed)) / len(answers) if answers else float("nan")
        hits, misses = judge(answers, moves, versions[0])
        judged = hits + len(misses)
        rate = hits / judged if judged else float("nan")
        windows = sum(converged - written for written, converged, _, _ in moves)
        print(f"\n{len(answers)} requests over {args.replicas} replicas, {args.moves} moves "
              f"({windows:.1f} s of swap windows in all), {args.restarts} replica restarts: {len(failed)} failed")
        print(f"availability: {len(answers) - len(failed)} of {len(answers)} answered = {available:.6f} "
              f"(goal >= {GOAL}: {'met' if available >= GOAL else 'MISSED'})")
        print(f"version hit rate: {hits} of {judged} = {rate:.6f} (goal >= {GOAL}: "
              f"{'met' if rate >= GOAL else 'MISSED'})")
        for miss in misses[:20]:
            print(f"  miss: {miss}")
        for answer in failed[:10]:
            print(f"  failed: {answer}")
    finally:
        stop_all(servers)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
