"""Endpoint cold start: from process start to `GET /health` answering 200.

The platform's endpoint (`mining-platform serve`, every project under projects/,
a local MLflow store with no registered model, MongoDB not needed to answer
/health) against the named baseline `bare FastAPI`: a FastAPI app with one /health
route under the same uvicorn, the floor any FastAPI endpoint pays. Both run as
fresh processes, alternated `--repeat` times; the report gives medians and the ratio.
It also lists which heavy libraries the endpoint's import pulls in.

    .venv/bin/python -m bench.endpoint_start [--repeat 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mining_platform.embedded_mongo import free_port
from mining_platform.settings import console_script

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
HEAVY = ("dagster", "mlflow", "pandas", "sklearn", "matplotlib", "scipy", "mining_platform.training")


def time_to_health(command: list[str], env: dict, port: int, timeout: float = 120.0) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode} before answering")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"no /health answer within {timeout}s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def heavy_imports() -> list[str]:
    probe = ("import sys, mining_platform.serving.app; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "MINING_HOME": scratch, "MINING_PROJECTS_DIR": str(REPO / "projects"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db", "MINING_ADMIN_TOKEN": "bench"}
        # Create the MLflow store once, so no run pays its schema migration.
        subprocess.run([sys.executable, "-c", "import mlflow, sys; mlflow.MlflowClient(sys.argv[1]).search_experiments()",
                        env["MLFLOW_TRACKING_URI"]], check=True, capture_output=True)
        endpoint, bare = [], []
        for _ in range(args.repeat):
            port = free_port()
            env["MINING_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
            endpoint.append(time_to_health([console_script("mining-platform"), "serve"], env, port))
            port = free_port()
            bare.append(time_to_health([sys.executable, "-c", BARE_APP, str(port)], env, port))
    e, b = statistics.median(endpoint), statistics.median(bare)
    print(f"endpoint cold start (process start -> /health 200), median of {args.repeat}:")
    print(f"  mining-platform serve  {e:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in endpoint)})")
    print(f"  bare FastAPI baseline  {b:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"  ratio endpoint / bare  {e / b:6.2f}x")
    loaded = heavy_imports()
    print(f"  heavy modules imported by mining_platform.serving.app: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
