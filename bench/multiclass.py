"""A multiclass project through the UI, timed: examples/plans from `make dev` to served class probabilities.

A dev stack of its own (fresh MINING_HOME, free ports, a workspace of the one project `plans`), the account log
imported with `mining-platform import`, then what a user clicks in the Dagster UI, sent through the webserver's
GraphQL API as the UI sends it: backfill the features and the samples (one run each), materialise the model (its
gate) and the deployment, and score two accounts on the endpoint. Each step's time is printed, and the total
against the requirements' goal of a new task online within 30 minutes.

Run: .venv/bin/python -m bench.multiclass
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.walkthrough import (
    REPO,
    Dagster,
    DevStack,
    days,
    model_versions,
    print_log_coverage,
    stack_environment,
)

GOAL_SECONDS = 30 * 60
PROJECT = "plans"
WORKSPACE = f"""load_from:
  - python_module:
      module_name: sensors.definitions
      attribute: {PROJECT}
      location_name: {PROJECT}
      working_directory: {REPO}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use this MINING_HOME and keep it (default: a temporary one)")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="bench-multiclass-"))
    home.mkdir(parents=True, exist_ok=True)
    env, ports = stack_environment(home)
    projects = home / "projects"
    shutil.copytree(REPO / "examples" / PROJECT, projects / PROJECT, dirs_exist_ok=True)
    env["MINING_PROJECTS_DIR"] = str(projects)
    (home / "workspace.yaml").write_text(WORKSPACE)
    began_at = time.time()
    dev = DevStack(home, env, cwd=home, width=58)
    step, ready, started = dev.step, dev.ready, dev.started

    def imported() -> None:
        subprocess.run([str(REPO / ".venv" / "bin" / "mining-platform"), "import", str(REPO / "examples" / "plans.jsonl"),
                        "--project", PROJECT, "--source", "events"], env=env, check=True, capture_output=True)

    endpoint = httpx.Client(base_url=env["MINING_ENDPOINT_URL"], timeout=30)
    answer: dict = {}

    def scored() -> None:
        deadline = time.monotonic() + 300
        while True:
            reply = endpoint.post(f"/v1/{PROJECT}/predict", json={"rows": [row, row | {"views_premium_30d": 0.0}]})
            if reply.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        if reply.status_code != 200:
            raise RuntimeError(f"predict answered {reply.status_code}: {reply.text[:300]}")
        answer.update(reply.json())

    row = {"sessions_30d": 12.0, "views_basic_30d": 0.0, "views_plus_30d": 1.0, "views_premium_30d": 6.0,
           "seats_invited_30d": 14.0, "subscriptions_30d": 0.0, "days_since_last_event": 1.0}
    try:
        print(f"multiclass walkthrough (docs/own-data.md, A multiclass question) on a fresh MINING_HOME {home}")
        step("1  make dev: every service answers", ready)
        step("1  import examples/plans.jsonl (15,148 events)", imported)
        dagster = Dagster(ports["dagster"], location=PROJECT)
        step("2  backfill features 2024-06-01..07-01 (one run)",
             lambda: dagster.backfill([f"{PROJECT}/features/account_activity"], days("2024-06-01", "2024-07-01")))
        step("2  backfill samples 2024-06-01..06-30 (one run)",
             lambda: dagster.backfill([f"{PROJECT}/samples"], days("2024-06-01", "2024-06-30")))
        step("3  materialise the model (gate on macro AUC)", lambda: dagster.materialize(
            [f"{PROJECT}/model"], config={"ops": {"plans__model": {"config": {"validation_days": 4,
                                                                               "embargo_days": 14}}}}))
        step("4  materialise the deployment", lambda: dagster.materialize([f"{PROJECT}/deployment"]))
        step("4  score two rows: a probability per plan", scored)
        total = time.perf_counter() - started
        print(f"  {'total, make dev to served class probabilities':<58} {total:7.1f} s   "
              f"{total / GOAL_SECONDS:.2f}x the 30-minute goal ({'met' if total <= GOAL_SECONDS else 'MISSED'})")
        print(f"  answer: {answer.get('classes')} {answer.get('predictions')} -> {answer.get('predicted_class')}")
        print_log_coverage(home, began_at)
        for version, metrics, gate in model_versions(env["MLFLOW_TRACKING_URI"], "plans_xgb"):
            print(f"  plans_xgb v{version}: macro AUC {metrics.get('macro_auc', float('nan')):.4f}, accuracy "
                  f"{metrics.get('accuracy', float('nan')):.4f} (majority {metrics.get('majority_rate', float('nan')):.4f}), "
                  f"log loss {metrics.get('mlogloss', float('nan')):.4f}, gate {gate}")
    finally:
        dev.stop(keep=args.keep is not None)
    sys.exit(0)


if __name__ == "__main__":
    main()
