"""Serving: the scoring endpoint against `mlflow models serve` of the same version, then reloads under load.

Setup: the embedded MongoDB (for the prediction log), a local MLflow store (sqlite),
two versions of `churn_xgb` trained on synthetic rows with the churn project's 17
features (depth 6, 150 trees; `demo/models.py`), version 1 as champion. Both servers run as their own
processes with one worker each, on this machine, in the same run:

* `mining-platform serve` — `POST /v1/churn/predict` with `{"rows": [row]}`, the
  default prediction-log sample (MINING_PREDICTION_LOG_SAMPLE_RATE);
* `mlflow models serve -m models:/churn_xgb/1 --env-manager local` — `POST /invocations`
  with `{"dataframe_records": [row]}`.

1. Single-row requests at 8 connections for `--duration` seconds, rotating the
   servers `--repeat` times: throughput and p99 latency (medians), and their
   ratios (goal: >= 10x on both). A third server is the same endpoint with
   MINING_ENDPOINT_METRICS=off: the endpoint's throughput with /metrics against
   without it (goal >= 0.95x); a scrape of /metrics then shows what was counted.
2. Load on the endpoint while `--reloads` reloads alternate the champion between
   the two versions: failed requests (goal: 0) and the time from moving the alias to
   the new version answering a prediction.

The load generator is wrk (Debian package `wrk`) when installed, else an asyncio
aiohttp client in this process; the report says which. The machine is shared: read
the ratios, not the absolute numbers.

With `--endpoint-pythonpath PATH` the endpoint runs the code of another checkout (to
compare before and after a change on the same machine in one session).

    .venv/bin/python -m bench.serving [--duration 10] [--repeat 3] [--reloads 20] [--endpoint-pythonpath PATH]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from mlflow import MlflowClient

from mining_platform.registry import aliases
from mining_platform.settings import console_script
from mining_platform.spec.feature_files import load_feature_definitions
from mining_platform.spec.project import load_project
from mining_platform.tools.embedded_mongo import free_port, secured_server
from tests.fixtures.model_versions import register_synthetic_version

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
CONNECTIONS = 8
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%f %%f\\n", summary.requests, e.connect + e.read + e.write + e.timeout,
    e.status, summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def stop_all(servers: list[subprocess.Popen]) -> None:
    """SIGTERM every server, then SIGKILL what has not stopped 30 s later."""
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def start(log: Path, env: dict, command: list[str]) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(url: str, ok, what: str, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2, headers={"Authorization": f"Bearer {TOKEN}"})
            if ok(response):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s; its log ends:\n{log.read_text()[-3000:]}")


def load_with_wrk(url: str, body: str, duration: float, scratch: Path, *, extra_lua: str = "") -> dict:
    """`extra_lua`: more lines for wrk's script (e.g. a request header)."""
    script = scratch / "post.lua"
    script.write_text((WRK_SCRIPT % body) + extra_lua)
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration:.0f}s", "--timeout", "5s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    requests, socket_errors, status_errors, micros, p50, p99 = next(
        line.split()[1:] for line in out.splitlines() if line.startswith("RESULT"))
    return {"rps": int(requests) / (int(micros) / 1e6), "p50_ms": float(p50) / 1e3, "p99_ms": float(p99) / 1e3,
            "failed": int(socket_errors) + int(status_errors), "requests": int(requests)}


def load_with_aiohttp(url: str, body: str, duration: float, scratch: Path) -> dict:
    import aiohttp

    async def run() -> dict:
        latencies, failed = [], 0
        deadline = time.perf_counter() + duration

        async def worker(session):
            nonlocal failed
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                        await response.read()
                        failed += response.status != 200
                except aiohttp.ClientError:
                    failed += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
        return {"rps": len(latencies) / elapsed, "p50_ms": float(np.percentile(latencies, 50)) * 1e3,
                "p99_ms": float(np.percentile(latencies, 99)) * 1e3, "failed": failed, "requests": len(latencies)}

    return asyncio.run(run())


def two_versions(scratch: Path, model_name: str, features: list[str]):
    """A local MLflow store under `scratch` with two versions of `model_name` (depth 6, 150 trees), the first as
    champion: (tracking URI, client, versions)."""
    tracking = f"sqlite:///{scratch / 'mlflow.db'}"
    versions = tuple(register_synthetic_version(
        tracking_uri=tracking, artifact_location=str(scratch / "artifacts"), model_name=model_name,
        features=features, seed=seed, project="churn", rows=20_000, max_depth=6, rounds=150) for seed in (1, 2))
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    aliases.promote_to_champion(client, model_name, versions[0].version)
    return tracking, client, versions


def endpoint_env(scratch: Path, mongo_uri: str, tracking: str, projects: Path) -> dict:
    """The environment of a benchmarked endpoint (and `mlflow models serve`) process."""
    return {**os.environ, "MINING_MONGO_URI": mongo_uri, "MINING_MONGO_DB": "bench", "MLFLOW_TRACKING_URI": tracking,
            "MLFLOW_REGISTRY_URI": tracking, "MINING_ADMIN_TOKEN": TOKEN, "MINING_PROJECTS_DIR": str(projects),
            "MINING_HOME": str(scratch / "home"), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            # mlflow models serve execs `uvicorn` from PATH: this environment's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per server")
    parser.add_argument("--reloads", type=int, default=20, help="reloads during load in part 2")
    parser.add_argument("--endpoint-pythonpath", help="run the endpoint from this checkout instead")
    args = parser.parse_args()

    generate = load_with_wrk if shutil.which("wrk") else load_with_aiohttp
    project = load_project(REPO / "projects" / "churn")
    features = [f for d in load_feature_definitions(REPO / "projects" / "churn", project) for f in d.features]
    model_name = project.model.name
    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    servers: list[subprocess.Popen] = []
    try:
        with secured_server(scratch / "mongo") as mongo_uri:
            tracking, client, (first, second) = two_versions(scratch, model_name, features)
            env = endpoint_env(scratch, mongo_uri, tracking, REPO / "projects")
            ours_port, mlflow_port, bare_port = free_port(), free_port(), free_port()
            ours_env = {**env, **({"PYTHONPATH": args.endpoint_pythonpath} if args.endpoint_pythonpath else {})}
            servers.append(start(scratch / "endpoint.log", ours_env,
                                 [console_script("mining-platform"), "serve", "--port", str(ours_port)]))
            servers.append(start(scratch / "endpoint-no-metrics.log", {**ours_env, "MINING_ENDPOINT_METRICS": "off"},
                                 [console_script("mining-platform"), "serve", "--port", str(bare_port)]))
            servers.append(start(scratch / "mlflow-serve.log", env,
                                 [console_script("mlflow"), "models", "serve", "-m", first.uri, "--env-manager", "local",
                                  "-h", "127.0.0.1", "-p", str(mlflow_port)]))
            ours = f"http://127.0.0.1:{ours_port}"
            baseline = f"http://127.0.0.1:{mlflow_port}"
            wait_for(f"{ours}/health", lambda r: r.json()["projects"]["churn"]["version"] == first.version, "the endpoint",
                     scratch / "endpoint.log")
            bare = f"http://127.0.0.1:{bare_port}"
            wait_for(f"{bare}/health", lambda r: r.json()["projects"]["churn"]["version"] == first.version,
                     "the endpoint without metrics", scratch / "endpoint-no-metrics.log")
            wait_for(f"{baseline}/ping", lambda r: r.status_code == 200, "mlflow models serve", scratch / "mlflow-serve.log")

            row = {f: round(float(v), 3) for f, v in zip(features, np.random.default_rng(5).gamma(2.0, 3.0, len(features)))}
            targets = {
                "mlflow models serve": (f"{baseline}/invocations", json.dumps({"dataframe_records": [row]})),
                "mining-platform": (f"{ours}/v1/churn/predict", json.dumps({"rows": [row]})),
                "mining-platform, metrics off": (f"{bare}/v1/churn/predict", json.dumps({"rows": [row]})),
            }
            ours_score = httpx.post(targets["mining-platform"][0], content=targets["mining-platform"][1],
                                    headers={"Content-Type": "application/json"}).json()["predictions"][0]
            mlflow_score = httpx.post(targets["mlflow models serve"][0], content=targets["mlflow models serve"][1],
                                      headers={"Content-Type": "application/json"}).json()["predictions"][0]
            print(f"load generator: {generate.__name__.removeprefix('load_with_')}, {CONNECTIONS} connections, "
                  f"{args.duration:.0f}s per run, {args.repeat} runs per server (alternating)")
            print(f"same row, same version: endpoint {ours_score!r}, mlflow models serve {mlflow_score!r}")
            for name, (url, body) in targets.items():  # warm-up
                generate(url, body, 2, scratch)
            results = {name: [] for name in targets}
            for i in range(args.repeat):
                names = list(targets)
                for name in names[i % len(names):] + names[:i % len(names)]:  # each server in each position
                    results[name].append(generate(*targets[name], args.duration, scratch))

            print(f"\n{'server':<30} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
            medians = {}
            for name, runs in results.items():
                medians[name] = {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")}
                failed = sum(r["failed"] for r in runs)
                print(f"{name:<30} {medians[name]['rps']:>9.0f} {medians[name]['p50_ms']:>8.2f} "
                      f"{medians[name]['p99_ms']:>8.2f} {failed:>7}")
            ours_m, base_m = medians["mining-platform"], medians["mlflow models serve"]
            print(f"throughput ratio: {ours_m['rps'] / base_m['rps']:.1f}x   p99 ratio (mlflow / ours): "
                  f"{base_m['p99_ms'] / ours_m['p99_ms']:.1f}x   (goal >= 10x on both)")
            bare_m = medians["mining-platform, metrics off"]
            print(f"with /metrics against without: throughput {ours_m['rps'] / bare_m['rps']:.3f}x (goal >= 0.95x), "
                  f"p99 {ours_m['p99_ms'] / bare_m['p99_ms']:.3f}x")
            scraped = httpx.get(f"{ours}/metrics").text
            counted = [line for line in scraped.splitlines()
                       if line.startswith(("mining_endpoint_requests_total", "mining_endpoint_request_seconds_count"))]
            print("scraped /metrics: " + "; ".join(counted))

            reload_under_load(generate, targets["mining-platform"], ours, client, model_name, (first, second),
                              args, scratch)
    finally:
        stop_all(servers)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def reload_under_load(generate, target, ours, client, model_name, versions, args, scratch) -> None:
    url, body = target
    duration = 4 + args.reloads * 1.5
    outcome: dict = {}
    loader = threading.Thread(target=lambda: outcome.update(generate(url, body, duration, scratch)))
    loader.start()
    time.sleep(2)
    swaps, reload_calls = [], []
    with httpx.Client(timeout=60) as http:
        for i in range(args.reloads):
            version = versions[(i + 1) % 2].version
            moved = time.perf_counter()
            aliases.promote_to_champion(client, model_name, version)
            answer = http.post(f"{ours}/v1/churn/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            reload_calls.append(time.perf_counter() - moved)
            if answer.status_code != 200:
                raise RuntimeError(f"reload {i} failed: {answer.status_code} {answer.text}")
            json_body = {"Content-Type": "application/json"}
            while http.post(url, content=body, headers=json_body).json()["model"]["version"] != version:
                time.sleep(0.001)
            swaps.append(time.perf_counter() - moved)
            time.sleep(max(0.0, 1.5 - swaps[-1]))
    loader.join()
    print(f"\n{args.reloads} reloads during {duration:.0f}s of load at {CONNECTIONS} connections: "
          f"{outcome['requests']} requests, {outcome['failed']} failed (goal 0); "
          f"{outcome['rps']:.0f} req/s, p99 {outcome['p99_ms']:.2f} ms under reloads")
    print(f"alias moved -> new version answering: median {statistics.median(swaps) * 1e3:.0f} ms, "
          f"max {max(swaps) * 1e3:.0f} ms (the reload call itself: median {statistics.median(reload_calls) * 1e3:.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())
