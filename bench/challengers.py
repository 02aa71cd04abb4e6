"""The endpoint with a challenger in shadow and in canary against the champion alone, on the same process.

Setup as bench/serving.py: the embedded MongoDB, a local MLflow store, two versions of
`churn_xgb` (the churn project's 17 features, depth 6, 150 trees), one endpoint process
(`mining-platform serve`, one worker) over a copy of `projects/` whose `churn/project.yaml`
this bench rewrites. Three configurations, alternated `--repeat` times, single-row
requests at 8 connections for `--duration` seconds each:

* champion: no challenger alias;
* shadow: version 2 is `challenger`, `serving.challenger.mode: shadow` (every request
  scored twice, answered by the champion);
* canary: the same version in `canary` at traffic 0.1; requests send an `X-Request-Key`
  (hashed per request to pick the side).

The endpoint switches between them through `POST /v1/churn/reload?role=challenger`,
which re-reads the project file's mode and traffic. Printed: throughput and p99 per
configuration (medians), their ratios to the champion alone, the extra time per request,
and one `inplace_predict` of a row measured in this process (the goal: shadow costs at
most one extra `inplace_predict` per request, canary nothing measurable).

    .venv/bin/python -m bench.challengers [--duration 10] [--repeat 3]
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml
from mlflow import MlflowClient

from bench.serving import (
    CONNECTIONS,
    TOKEN,
    endpoint_env,
    load_with_aiohttp,
    load_with_wrk,
    start,
    two_versions,
    wait_for,
)
from mining_platform.registry import aliases
from mining_platform.registry.loading import load_version
from mining_platform.settings import console_script
from mining_platform.spec.feature_files import load_feature_definitions
from mining_platform.spec.project import load_project
from mining_platform.tools.embedded_mongo import free_port, secured_server

REPO = Path(__file__).resolve().parents[1]
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
KEYED = 'wrk.headers["X-Request-Key"] = "user-42"\n'


def configure(projects: Path, url: str, client: MlflowClient, model_name: str, challenger: str | None,
              mode: str) -> None:
    """Point the challenger alias (or remove it), write the mode into project.yaml, and reload the challenger."""
    path = projects / "churn" / "project.yaml"
    project = yaml.safe_load(path.read_text())
    project["serving"] = {"challenger": {"mode": mode, "traffic": 0.1}}
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    aliases.set_challenger(client, model_name, challenger)
    answer = httpx.post(f"{url}/v1/churn/reload", params={"role": "challenger"}, headers=ADMIN, timeout=120)
    answer.raise_for_status()
    running = httpx.get(f"{url}/v1/churn/version").json()["challenger"]
    assert (running or {}).get("version") == challenger and (running is None or running["mode"] == mode), running


def one_row_predict_ms(tracking: str, model_name: str, version: str, row: list[float]) -> float:
    booster = load_version(tracking, model_name, version).booster
    booster.set_param({"nthread": 1})  # as the endpoint scores
    X = np.array([row], dtype=np.float64)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(2000):
            booster.inplace_predict(X, validate_features=False)
        timings.append((time.perf_counter() - started) / 2000)
    return statistics.median(timings) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    project = load_project(REPO / "projects" / "churn")
    features = [f for d in load_feature_definitions(REPO / "projects" / "churn", project) for f in d.features]
    model_name = project.model.name
    scratch = Path(tempfile.mkdtemp(prefix="bench-challengers-"))
    projects = scratch / "projects"
    shutil.copytree(REPO / "projects" / "churn", projects / "churn")
    server = None
    try:
        with secured_server(scratch / "mongo") as mongo_uri:
            tracking, client, (first, second) = two_versions(scratch, model_name, features)
            env = endpoint_env(scratch, mongo_uri, tracking, projects)
            port = free_port()
            server = start(scratch / "endpoint.log", env, [console_script("mining-platform"), "serve", "--port",
                                                           str(port)])
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/health", lambda r: r.json()["projects"]["churn"]["version"] == first.version, "the endpoint",
                     scratch / "endpoint.log")
            values = [round(float(v), 3) for v in np.random.default_rng(5).gamma(2.0, 3.0, len(features))]
            body = json.dumps({"rows": [dict(zip(features, values))]})
            target = f"{url}/v1/churn/predict"
            configurations = {"champion": (None, "shadow"), "shadow": (second.version, "shadow"),
                              "canary": (second.version, "canary")}

            def measure(name: str, duration: float) -> dict:
                configure(projects, url, client, model_name, *configurations[name])
                if use_wrk:
                    return load_with_wrk(target, body, duration, scratch, extra_lua=KEYED if name == "canary" else "")
                return load_with_aiohttp(target, body, duration, scratch)

            for name in configurations:  # warm-up
                measure(name, 2)
            results = {name: [] for name in configurations}
            for i in range(args.repeat):
                order = list(configurations) if i % 2 == 0 else list(reversed(configurations))
                for name in order:
                    results[name].append(measure(name, args.duration))
            one = one_row_predict_ms(tracking, model_name, second.version, values)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"load generator: {'wrk' if use_wrk else 'aiohttp'}, {CONNECTIONS} connections, {args.duration:.0f}s per run, "
          f"{args.repeat} runs per configuration (alternating); one inplace_predict of a row: {one:.3f} ms")
    print(f"{'configuration':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'rps ratio':>10} "
          f"{'p99 ratio':>10} {'extra ms/request':>17}")
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
               for name, runs in results.items()}
    base = medians["champion"]
    for name, m in medians.items():
        # Extra service time per request: with one worker, 1/throughput is the time the worker spends per request.
        extra = (1 / m["rps"] - 1 / base["rps"]) * 1e3
        print(f"{name:<14} {m['rps']:>8.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
              f"{sum(r['failed'] for r in results[name]):>7} {m['rps'] / base['rps']:>9.2f}x "
              f"{m['p99_ms'] / base['p99_ms']:>9.2f}x {extra:>17.3f}")
    print(f"shadow costs {(1 / medians['shadow']['rps'] - 1 / base['rps']) * 1e3 / one:.1f} inplace_predict calls per "
          "request (goal: at most 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
