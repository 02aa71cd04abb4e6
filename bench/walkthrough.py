"""The walkthrough (docs/walkthrough.md), timed: from `mining-platform dev` to the endpoint serving the version retrained on drift,
then the part after a model is live (batch predictions, a challenger in shadow and canary, realised performance).

Starts the dev stack (`make dev`'s command) in a fresh `MINING_HOME` on free ports and
does what the walkthrough's steps click, through the Dagster webserver's GraphQL API
(the calls the UI makes): step 2 and 3 (one demo day, twice), step 4 and 5 (the
two-month backfill of the demo days and tiles, until the automation sensor has combined
the last feature day of both sets), step 8 (the samples backfill), step 9
(the model), step 10 (the deployment), step 11 (a prediction), step 12 (a quiet day,
until its drift report is published) and step 13 (a drifted day, until the endpoint
answers with the version the drift sensor's retrain deployed). Prints each step's
seconds and the total against the issue's 10-minute goal. Reading and clicking time
is not included: it is the machine's time a newcomer waits.

Then steps 16-20: the batch predictions of every committed day, a version trained with
a 7-day embargo (more recent training days) deployed as a shadow challenger, the project file switched to a canary
(in a copy of `projects/` under the fresh home), 18 more demo days so labels mature,
until the performance sensor has reported the newest matured days; it prints the
realised metrics per day, the version hit rate and the sensor's decision.

    .venv/bin/python -m bench.walkthrough [--keep HOME]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 600
PROJECT = "churn"

BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on UnauthorizedError { message } ... on PartitionSetNotFoundError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }"""
RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName } } } }"""
LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidStepError { invalidStepKey }
  ... on PipelineNotFoundError { message } ... on InvalidSubsetError { message } } }"""
DECISION = """query($key: AssetKeyInput!, $partitions: [String!]) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(partitions: $partitions) { partition
    metadataEntries { label ... on TextMetadataEntry { text } } } } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
METADATA = """query($key: AssetKeyInput!, $partitions: [String!]) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(partitions: $partitions) { partition metadataEntries { label
    ... on TextMetadataEntry { text } ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue }
    ... on JsonMetadataEntry { jsonString } } } } } }"""
SENSOR_TICKS = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename
  ... on Sensor { sensorState { ticks(limit: 20) { status skipReason runIds timestamp } } } } }"""
MATERIALIZED = """query($key: AssetKeyInput!, $partitions: [String!]) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(partitions: $partitions) { runId partition } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dagster:
    def __init__(self, port: int, location: str = PROJECT):
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.location = location  # the code location (project) runs are launched in
        self.http = httpx.Client(timeout=120)

    def query(self, text: str, **variables) -> dict:
        reply = self.http.post(self.url, json={"query": text, "variables": variables})
        reply.raise_for_status()
        body = reply.json()
        if body.get("errors"):
            raise RuntimeError(json.dumps(body["errors"])[:2000])
        return body["data"]

    def backfill(self, assets: list[str], partitions: list[str]) -> None:
        params = {"partitionNames": partitions, "assetSelection": [{"path": a.split("/")} for a in assets]}
        result = self.query(BACKFILL, params=params)["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill of {assets} refused: {result}")
        backfill_id = result["backfillId"]
        while True:
            status = self.query(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
            if status not in ("REQUESTED", "CANCELING", "FAILING"):
                break
            time.sleep(2)
        runs = self.query(RUNS, filter={"tags": [{"key": "dagster/backfill", "value": backfill_id}]})
        failed = [r for r in runs["runsOrError"]["results"] if r["status"] != "SUCCESS"]
        if status not in ("COMPLETED", "COMPLETED_SUCCESS") or failed:
            raise RuntimeError(f"backfill {backfill_id} of {assets} ended {status}; runs not successful: {failed}")

    def materialize(self, assets: list[str], *, partition: str | None = None, config: dict | None = None) -> None:
        params = {
            "selector": {"repositoryLocationName": self.location, "repositoryName": "__repository__",
                         "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": a.split("/")} for a in assets]},
            "runConfigData": config or {},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}] if partition else []},
        }
        result = self.query(LAUNCH, p=params)["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"materialising {assets} refused: {result}")
        run_id = result["run"]["runId"]
        while (status := self.query(RUN_STATUS, id=run_id)["runOrError"]["status"]) not in (
                "SUCCESS", "FAILURE", "CANCELED"):
            time.sleep(1)
        if status != "SUCCESS":
            raise RuntimeError(f"run {run_id} materialising {assets} ended {status}")

    def decision(self, asset: str, partition: str) -> str:
        found = self.query(DECISION, key={"path": asset.split("/")}, partitions=[partition])["assetOrError"]
        entries = found["assetMaterializations"][-1]["metadataEntries"] if found.get("assetMaterializations") else []
        return next((e["text"] for e in entries if e["label"] == "decision"), "(no decision)")

    def metadata(self, asset: str, partition: str) -> dict:
        """The latest materialisation's metadata of a partition, as label -> value."""
        found = self.query(METADATA, key={"path": asset.split("/")}, partitions=[partition])["assetOrError"]
        if not found.get("assetMaterializations"):
            return {}
        values = {}
        for entry in found["assetMaterializations"][-1]["metadataEntries"]:
            for field in ("text", "floatValue", "intValue"):
                if field in entry:
                    values[entry["label"]] = entry[field]
            if "jsonString" in entry:
                values[entry["label"]] = json.loads(entry["jsonString"])
        return values

    def ticks(self, sensor: str) -> list[dict]:
        selector = {"repositoryLocationName": self.location, "repositoryName": "__repository__", "sensorName": sensor}
        return self.query(SENSOR_TICKS, selector=selector)["sensorOrError"]["sensorState"]["ticks"]

    def wait_materialized(self, asset: str, partition: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.query(MATERIALIZED, key={"path": asset.split("/")}, partitions=[partition])["assetOrError"]
            if found.get("assetMaterializations"):
                return
            time.sleep(2)
        raise TimeoutError(f"{asset} {partition} not materialised within {timeout:.0f} s")


class DevStack:
    """`mining-platform dev` started in a process group of its own, its output in `home/dev.log`, and a timer of
    the steps run against it (each printed as it ends)."""

    def __init__(self, home: Path, env: dict[str, str], *, cwd: Path = REPO, width: int = 62):
        self.home, self.log, self.width = home, home / "dev.log", width
        self.timings: list[tuple[str, float]] = []
        self.started = time.perf_counter()
        self.process = subprocess.Popen([str(REPO / ".venv" / "bin" / "mining-platform"), "dev"], cwd=cwd, env=env,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def step(self, name: str, action) -> None:
        began = time.perf_counter()
        action()
        self.timings.append((name, time.perf_counter() - began))
        print(f"  {name:<{self.width}} {self.timings[-1][1]:7.1f} s", flush=True)

    def stop(self, *, keep: bool) -> None:
        """Stop the stack and everything it started; remove its home unless asked to keep it."""
        stop_stack(self.process)
        if not keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def ready(self) -> None:
        deadline = time.monotonic() + 600
        while "dev stack is ready" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dev stack did not start; see {self.log}")
            time.sleep(1)


def print_log_coverage(home: Path, since: float) -> None:
    """The share of the stack's finished runs and steps whose logs hold start, outcome and error (goal >= 98 %)."""
    import datetime as dt

    import dagster as dg

    from assets.log_coverage import log_coverage

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        found = log_coverage(instance, since=dt.datetime.fromtimestamp(since, dt.timezone.utc))
    share = f"{found.share:.2%}" if found.share is not None else "-"
    print(f"  log coverage: {found.runs_covered} of {found.runs} runs and {found.steps_covered} of {found.steps} steps "
          f"log start, outcome and (failed) error: {share} (goal >= 98 %)"
          + (f"; gaps: {'; '.join(found.gaps[:5])}" if found.gaps else ""))


def stack_environment(home: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The environment of a dev stack of its own in `home`, on free ports (and the ports)."""
    ports = {name: free_port() for name in ("dagster", "mlflow", "endpoint", "mongo")}
    env = {**os.environ, "MINING_HOME": str(home), "MINING_DAGSTER_PORT": str(ports["dagster"]),
           "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
           "MINING_ENDPOINT_URL": f"http://127.0.0.1:{ports['endpoint']}",
           "MINING_MONGO_URI": f"mongodb://127.0.0.1:{ports['mongo']}/?directConnection=true"}
    for name in ("MINING_ADMIN_TOKEN", "MINING_MONGO_DB"):
        env.pop(name, None)
    return env, ports


def stop_stack(stack: subprocess.Popen) -> None:
    """Stop `mining-platform dev` and everything it started: Ctrl-C, then firmer."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(stack.pid, sig)
            stack.wait(timeout=60)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def model_versions(tracking: str, name: str) -> list[tuple[str, dict, str]]:
    """(version, metrics, gate tag) of every version of a registered model, from MLflow's REST API."""
    http = httpx.Client(base_url=tracking, timeout=30)
    found = http.get("/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{name}'"}).json()
    result = []
    for v in sorted(found.get("model_versions", []), key=lambda v: int(v["version"])):
        run = http.get("/api/2.0/mlflow/runs/get", params={"run_id": v["run_id"]}).json()["run"]
        metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
        tags = {t["key"]: t["value"] for t in v.get("tags", [])}
        result.append((v["version"], metrics, tags.get("mining.gate", "?")))
    return result


def days(first: str, last: str) -> list[str]:
    import datetime as dt

    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=k)).isoformat() for k in range((end - start).days + 1)]


def after_model_is_live(dagster: Dagster, endpoint: httpx.Client, projects: Path, step) -> None:
    """README steps 16-20: predictions, a shadow then canary challenger, matured labels, performance, the decision."""
    started = time.perf_counter()
    step("16 predictions of every committed day (automation)",
         lambda: dagster.wait_materialized(f"{PROJECT}/predictions", "2024-03-02", timeout=900))
    scored = dagster.metadata(f"{PROJECT}/predictions", "2024-03-02")
    print(f"     predictions 2024-03-02: champion v{scored.get('champion_version')}, "
          f"{scored.get('entities')} entities")

    def shadow() -> None:
        dagster.materialize([f"{PROJECT}/model"], config={"ops": {"churn__model": {"config": {"embargo_days": 7}}}})
        dagster.materialize([f"{PROJECT}/deployment"],
                            config={"ops": {"churn__deployment": {"config": {"role": "challenger"}}}})

    step("17 a version trained with embargo_days 7, deployed as a shadow challenger", shadow)
    challenger = endpoint.get(f"/v1/{PROJECT}/version").json()["challenger"] or {}
    print(f"     /version challenger: v{challenger.get('version')} in {challenger.get('mode')}")

    def canary() -> None:
        path = projects / PROJECT / "project.yaml"
        path.write_text(path.read_text() + "serving:\n  challenger: {mode: canary, traffic: 0.2}\n")
        dagster.materialize([f"{PROJECT}/deployment"],
                            config={"ops": {"churn__deployment": {"config": {"role": "challenger"}}}})

    step("18 the project file switched to a canary; redeploy the challenger", canary)
    users = ["u0000000", "u0000003", "u0000006", "u0000007"]  # the README's example users: all have features
    answer = endpoint.post(f"/v1/{PROJECT}/predict", json={"entities": users})
    if answer.status_code != 200:
        raise RuntimeError(f"predict answered {answer.status_code}: {answer.text[:300]}")
    print(f"     canary: users {users} answered by versions {answer.json().get('versions')} (challenger "
          f"{answer.json().get('challenger', {}).get('version')})")
    for _ in range(60):  # traffic for the prediction log (sampled) and the hit rate
        endpoint.post(f"/v1/{PROJECT}/predict", json={"entities": users})

    def labels_mature() -> None:
        dagster.backfill([f"{PROJECT}/demo/user_events"], days("2024-03-03", "2024-03-20"))
        for day in ("2024-03-03", "2024-03-04", "2024-03-05"):
            dagster.wait_materialized(f"{PROJECT}/performance", day, timeout=2400)

    step("19 demo days 2024-03-03..20; performance of the matured days", labels_mature)
    for day in ("2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"):
        found = dagster.metadata(f"{PROJECT}/performance", day)
        if found:
            print(f"     performance {day}: {found.get('verdict')}; hit rate {found.get('version_hit_rate')} over "
                  f"{found.get('logged_predictions')} logged answers")

    def decision() -> None:
        since = time.time()  # a tick evaluated before the last report landed says nothing about it
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            launched = dagster.query(RUNS, filter={"tags": [{"key": "mining.cause", "value": "performance"}]})
            runs = launched["runsOrError"]["results"]
            if runs:
                print(f"     performance sensor launched: {[(r['jobName'], r['status']) for r in runs]}")
                return
            for tick in dagster.ticks(f"{PROJECT}_performance_sensor"):
                text = tick.get("skipReason") or ""
                if tick["timestamp"] > since and ("challenger v" in text or "within the gate" in text):
                    print(f"     performance sensor: {text}")
                    return
            time.sleep(5)
        print("     performance sensor: no decision within 300 s")

    step("20 the performance sensor's decision", decision)
    print(f"  {'steps 16-20':<62} {time.perf_counter() - started:7.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use this MINING_HOME and keep it (default: a temporary one)")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="bench-walkthrough-"))
    env, ports = stack_environment(home)
    # A copy of the projects: step 18 edits churn's project file.
    projects = home / "projects"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "projects", projects, dirs_exist_ok=True)
    env["MINING_PROJECTS_DIR"] = str(projects)
    began_at = time.time()
    dev = DevStack(home, env)
    step, ready, started = dev.step, dev.ready, dev.started

    endpoint = httpx.Client(base_url=env["MINING_ENDPOINT_URL"], timeout=30)

    def served_version() -> str | None:
        reply = endpoint.get(f"/v1/{PROJECT}/version")
        return reply.json().get("version") if reply.status_code == 200 else None

    def retrained_and_served(before: str) -> None:
        deadline = time.monotonic() + 1200
        while (version := served_version()) in (None, before):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the endpoint still serves version {version}")
            time.sleep(2)

    try:
        print(f"walkthrough (README steps 1-13) on a fresh MINING_HOME {home}")
        step("1  make dev: every service answers", ready)
        dagster = Dagster(ports["dagster"])
        demo = f"{PROJECT}/demo/user_events"
        step("2  materialise one demo day", lambda: dagster.materialize([demo], partition="2024-01-01"))
        step("3  the same day again", lambda: dagster.materialize([demo], partition="2024-01-01"))
        def two_months() -> None:
            tiles = [demo, f"{PROJECT}/tiles/user_activity", f"{PROJECT}/tiles/module_preferences"]
            dagster.backfill(tiles, days("2024-01-01", "2024-02-29"))
            # Step 5: the automation sensor combines every feature day whose tiles are all committed.
            for feature_set in ("user_activity", "module_preferences"):
                dagster.wait_materialized(f"{PROJECT}/features/{feature_set}", "2024-02-29", timeout=1800)

        step("4-5 backfill 2024-01-01..02-29 (demo, tiles); features follow", two_months)
        step("8  backfill samples 2024-01-31..02-14",
             lambda: dagster.backfill([f"{PROJECT}/samples"], days("2024-01-31", "2024-02-14")))
        step("9  materialise the model (gate)", lambda: dagster.materialize([f"{PROJECT}/model"]))
        step("10 materialise the deployment", lambda: dagster.materialize([f"{PROJECT}/deployment"]))

        def predict() -> None:
            reply = endpoint.post(f"/v1/{PROJECT}/predict", json={"entities": ["u0000000", "u0000003"]})
            if reply.status_code != 200:
                raise RuntimeError(f"predict answered {reply.status_code}: {reply.text[:300]}")

        step("11 score two users", predict)
        first = served_version()

        def quiet_day() -> None:
            dagster.materialize([demo], partition="2024-03-01")
            dagster.wait_materialized(f"{PROJECT}/drift_report", "2024-03-01", timeout=900)

        step("12 a quiet day, until its drift report", quiet_day)

        def drifted_day() -> None:
            dagster.materialize([demo], partition="2024-03-02",
                                config={"ops": {"churn__demo__user_events": {"config": {"drift": 1.0}}}})
            retrained_and_served(first)

        step("13 a drifted day, until the retrained version is served", drifted_day)
        total = time.perf_counter() - started
        print(f"  {'total, make dev to the retrained version served':<62} {total:7.1f} s   "
              f"{total / GOAL_SECONDS:.2f}x the 10-minute goal; served version {first} -> {served_version()}")
        for day in ("2024-03-01", "2024-03-02"):
            print(f"  drift report {day}: {dagster.decision(f'{PROJECT}/drift_report', day)}")
        for version, metrics, gate in model_versions(env["MLFLOW_TRACKING_URI"], "churn_xgb"):
            print(f"  churn_xgb v{version}: auc {metrics.get('auc', float('nan')):.4f}, gate {gate}")
        after_model_is_live(dagster, endpoint, projects, step)
        print_log_coverage(home, began_at)
        for version, metrics, gate in model_versions(env["MLFLOW_TRACKING_URI"], "churn_xgb"):
            print(f"  churn_xgb v{version}: auc {metrics.get('auc', float('nan')):.4f}, gate {gate}")
    finally:
        dev.stop(keep=args.keep is not None)
    sys.exit(0)


if __name__ == "__main__":
    main()
