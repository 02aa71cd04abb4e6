"""Endpoint cold start: from process start to `GET /health` answering, and to the champion being served.

Setup: a local MLflow store (sqlite) with one registered version of `churn_xgb` (the
churn project's features, `tests/fixtures`) as champion; MongoDB is not needed for
either answer. Every server is a fresh process, alternated `--repeat` times; the
report gives medians and ratios against named baselines measured in the same run:

* `/health` answering: `mining-platform serve` against `bare FastAPI`, a FastAPI app
  with one /health route under the same uvicorn (the floor any FastAPI endpoint pays);
* the champion served (`/health` names its version): `mining-platform serve` against
  `mlflow models serve` of the same version answering `/ping`.

It also lists which heavy libraries importing the endpoint pulls in. With
`--endpoint-pythonpath PATH` the endpoint runs the code of another checkout (to
compare before and after a change in one run).

    .venv/bin/python -m bench.endpoint_start [--repeat 5] [--endpoint-pythonpath PATH]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mining_platform.registry.aliases import promote_to_champion
from mining_platform.registry.client import client
from mining_platform.settings import console_script
from mining_platform.spec import load_spec
from mining_platform.tools.embedded_mongo import free_port
from tests.fixtures.model_versions import register_synthetic_version

REPO = Path(__file__).resolve().parents[1]
BARE_APP = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/health")
def health():
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
HEAVY = ("dagster", "mlflow", "xgboost", "pandas", "sklearn", "matplotlib", "scipy", "mining_platform.training")


def time_until(command: list[str], env: dict, url: str, ready: Callable[[httpx.Response], bool],
               timeout: float = 180.0) -> float:
    """Seconds from starting `command` until `url` answers and `ready` holds."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() < started + timeout:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode} before answering")
            try:
                if ready(httpx.get(url, timeout=1.0)):
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"{url} not ready within {timeout}s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def heavy_imports(env: dict, checkout: Path) -> list[str]:
    probe = f"import sys, mining_platform.serving.app; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    # From the checkout's folder: `python -c` puts the working directory first on sys.path.
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env,
                         cwd=checkout)
    return [m for m in out.stdout.strip().split(",") if m]


def line(name: str, runs: list[float]) -> str:
    return f"  {name:<28} {statistics.median(runs):6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in runs)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--endpoint-pythonpath", help="run the endpoint from this checkout instead")
    args = parser.parse_args()
    spec = load_spec(REPO / "projects" / "churn")
    with tempfile.TemporaryDirectory() as scratch:
        tracking = f"sqlite:///{scratch}/mlflow.db"
        logged = register_synthetic_version(
            tracking_uri=tracking, artifact_location=f"{scratch}/artifacts", model_name=spec.project.model.name,
            features=spec.feature_columns, seed=1, project=spec.name, rows=2000, max_depth=6, rounds=150)
        promote_to_champion(client(tracking), logged.name, logged.version)
        env = {**os.environ, "MINING_HOME": scratch, "MINING_PROJECTS_DIR": str(REPO / "projects"),
               "MLFLOW_TRACKING_URI": tracking, "MINING_ADMIN_TOKEN": "bench",
               "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
               # mlflow models serve execs `uvicorn` from PATH: this environment's.
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        endpoint_env = {**env, **({"PYTHONPATH": args.endpoint_pythonpath} if args.endpoint_pythonpath else {})}

        def served(response: httpx.Response) -> bool:
            return response.status_code == 200 and response.json()["projects"]["churn"]["up"]  # the only version

        runs: dict[str, list[float]] = {"health": [], "champion": [], "bare": [], "mlflow": []}
        for _ in range(args.repeat):
            port = free_port()
            endpoint = [console_script("mining-platform"), "serve", "--port", str(port)]
            health = f"http://127.0.0.1:{port}/health"
            runs["health"].append(time_until(endpoint, endpoint_env, health, lambda r: r.status_code == 200))
            runs["champion"].append(time_until(endpoint, endpoint_env, health, served))
            port = free_port()
            runs["bare"].append(time_until([sys.executable, "-c", BARE_APP, str(port)], env,
                                           f"http://127.0.0.1:{port}/health", lambda r: r.status_code == 200))
            port = free_port()
            runs["mlflow"].append(time_until(
                [console_script("mlflow"), "models", "serve", "-m", logged.uri, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(port)], env, f"http://127.0.0.1:{port}/ping",
                lambda r: r.status_code == 200))
    median = {name: statistics.median(values) for name, values in runs.items()}
    print(f"endpoint cold start, median of {args.repeat}"
          + (f" (endpoint code from {args.endpoint_pythonpath})" if args.endpoint_pythonpath else "") + ":")
    print(line("mining-platform: /health", runs["health"]))
    print(line("bare FastAPI: /health", runs["bare"]))
    print(f"  ratio endpoint / bare FastAPI        {median['health'] / median['bare']:6.2f}x")
    print(line("mining-platform: champion", runs["champion"]))
    print(line("mlflow models serve: /ping", runs["mlflow"]))
    print(f"  ratio endpoint / mlflow models serve {median['champion'] / median['mlflow']:6.2f}x")
    print(f"  heavy modules imported by mining_platform.serving.app: {', '.join(heavy_imports(endpoint_env, Path(args.endpoint_pythonpath or REPO))) or 'none'}")


if __name__ == "__main__":
    main()
