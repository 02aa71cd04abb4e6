"""A year of a flight log, from the file to a served model: import, tiles, windowed features and samples for the
whole year in one run each, then the model and its deployment, on the embedded MongoDB.

The data is `bench/datasets/flights.py` (the public nycflights13 log's shape: 336,776
departures of about 4,000 aircraft over 2013, CSV). As a user would: `mining-platform new`
over the collection, `import --set-end-date`, a windowed definition of 12 features per
aircraft (30- and 7-day windows) and a 30-day binary label (a departure delayed over an
hour), then Dagster `materialize` of `<p>/tiles/<set>` and `<p>/features/<set>` for the
year and `<p>/samples` for every day whose label window the log covers, each as one
single-run backfill (the partition-range tags a backfill run carries), `<p>/model` and
`<p>/deployment` to a `mining-platform serve` process, and one prediction.

Goal: at most 30 minutes in total. The baseline, measured in the same run on the same
data, is the same code one day per run (what a backfill launched one run per partition
does): `--baseline-days` consecutive days of tiles, feature days and sample days, each
its own `materialize`, whose medians are scaled to the year. It pays no run worker start,
so the ratio it gives is a floor. Goal: at least 10x.

    .venv/bin/python -m bench.year [--rows 336776] [--baseline-days 3]
"""

import argparse
import contextlib
import datetime as dt
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import httpx
import yaml

from assets.deployment import build_deployment_asset
from assets.features import build_feature_assets
from assets.model import build_model_asset
from assets.samples import build_samples_asset
from bench.datasets import flights
from mining_platform.settings import console_script
from mining_platform.spec import load_spec
from mining_platform.tools import cli
from mining_platform.tools.embedded_mongo import free_port, secured_server
from resources import EndpointResource, MlflowResource, MongoResource

GOAL_SECONDS = 30 * 60
GOAL_RATIO = 10.0
NAME = "flights"
SET = "aircraft_activity"
HORIZON = 30
TOKEN = "bench-year"

FEATURES = {
    "name": SET, "version": 1, "kind": "windowed",
    "description": "How much each aircraft flew over the last 30 and 7 days, how late, how far, and how long ago.",
    "owner": "bench", "source": "events",
    "aggregations": {
        "flights": {"op": "count", "windows_days": [7, 30]},
        "active_days": {"op": "active_days", "windows_days": [7, 30]},
        "delayed": {"op": "count", "where": {"$gt": ["$dep_delay", 15]}, "windows_days": [30]},
        "cancelled": {"op": "count", "where": {"$eq": [{"$ifNull": ["$dep_time", None]}, None]},
                      "windows_days": [30]},
        "mean_delay": {"op": "mean", "field": "dep_delay", "windows_days": [30]},
        "max_delay": {"op": "max", "field": "dep_delay", "windows_days": [30]},
        "distance": {"op": "sum", "field": "distance", "windows_days": [30]},
        "days_since_last": {"op": "days_since_last", "windows_days": [30]},
        "days_since_first": {"op": "days_since_first", "windows_days": [30]},
    },
    "post": [{"$addFields": {
        "distance_30d": {"$toDouble": "$distance_30d"},
        "mean_delay_30d": {"$toDouble": {"$ifNull": ["$mean_delay_30d", 0]}},
        "max_delay_30d": {"$toDouble": {"$ifNull": ["$max_delay_30d", 0]}},
        "delayed_share_30d": {"$divide": ["$delayed_30d", "$flights_30d"]},
    }}],
    "features": {
        "flights_30d": {"type": "int", "min": 1}, "flights_7d": {"type": "int", "min": 0},
        "active_days_30d": {"type": "int", "min": 1, "max": 30}, "active_days_7d": {"type": "int", "min": 0, "max": 7},
        "delayed_30d": {"type": "int", "min": 0}, "cancelled_30d": {"type": "int", "min": 0},
        "mean_delay_30d": {"type": "float"}, "max_delay_30d": {"type": "float"},
        "distance_30d": {"type": "float", "min": 0},
        "days_since_last_30d": {"type": "float", "min": 0, "max": 30},
        "days_since_first_30d": {"type": "float", "min": 0, "max": 30},
        "delayed_share_30d": {"type": "float", "min": 0, "max": 1},
    },
}
LABEL = {
    "name": "delayed_next_30d", "version": 1,
    "description": "1 when the aircraft has a departure more than an hour late in the 30 days from as_of.",
    "owner": "bench", "source": "events", "horizon_days": HORIZON,
    "pipeline": [
        {"$match": {"time_hour": {"$gte": {"$param": "as_of"}, "$lt": {"$param": "horizon_end"}},
                    "dep_delay": {"$gt": 60}}},
        {"$group": {"_id": "$tailnum", "value": {"$max": 1}}},
    ],
    "default": 0,
}


def cli_run(arguments: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(arguments)
    if code != 0:
        raise RuntimeError(f"mining-platform {' '.join(arguments)} failed: {err.getvalue()}{out.getvalue()}")
    return out.getvalue()


def write_project(projects: Path, workspace: Path) -> None:
    cli_run(["new", NAME, "--source", "flights", "--entity", "tailnum", "--timestamp", "time_hour",
             "--start-date", "2013-01-01", "--workspace", str(workspace)])
    folder = projects / NAME
    for starter in [*(folder / "features").glob("*.yaml"), *(folder / "labels").glob("*.yaml")]:
        starter.unlink()
    (folder / "features" / f"{SET}.yaml").write_text(yaml.safe_dump(FEATURES, sort_keys=False))
    (folder / "labels" / f"{LABEL['name']}.yaml").write_text(yaml.safe_dump(LABEL, sort_keys=False))
    project = yaml.safe_load((folder / "project.yaml").read_text())
    project["label"] = LABEL["name"]
    (folder / "project.yaml").write_text(yaml.safe_dump(project, sort_keys=False))


def days(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]


class Runs:
    """`materialize` of a project's assets on one instance, timed."""

    def __init__(self, spec, resources: dict):
        self.spec, self.resources = spec, resources
        self.instance = dg.DagsterInstance.ephemeral()
        tiles, features = build_feature_assets(spec.project, spec.definitions)
        self.assets = {"tiles": tiles, "features": features, "samples": build_samples_asset(spec),
                       "model": build_model_asset(spec), "deployment": build_deployment_asset(spec.project)}

    def run(self, asset: str, *, first: str | None = None, last: str | None = None, run_config=None) -> float:
        tags = {} if first is None else {"dagster/asset_partition_range_start": first,
                                         "dagster/asset_partition_range_end": last or first}
        started = time.perf_counter()
        result = dg.materialize([self.assets[asset]], resources=self.resources, instance=self.instance, tags=tags,
                                run_config=run_config, raise_on_error=False)
        seconds = time.perf_counter() - started
        print(f"    {asset} {first or ''}{'..' + last if last and last != first else ''}: {seconds:.1f} s",
              file=sys.stderr, flush=True)
        if not result.success:
            failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
            raise RuntimeError(f"{asset} {first}..{last} failed: {failures}")
        return seconds


@contextlib.contextmanager
def endpoint(env: dict):
    port = free_port()
    process = subprocess.Popen([console_script("mining-platform"), "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"mining-platform serve exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=flights.YEAR_ROWS)
    parser.add_argument("--baseline-days", type=int, default=3)
    args = parser.parse_args()
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch_dir, secured_server(Path(scratch_dir) / "mongo") as uri:
        scratch = Path(scratch_dir)
        projects, workspace = scratch / "projects", scratch / "workspace.yaml"
        projects.mkdir()
        workspace.write_text("load_from:\n")
        tracking = f"sqlite:///{scratch / 'mlflow.db'}"
        env = {"MINING_HOME": str(scratch / "home"), "MINING_PROJECTS_DIR": str(projects),
               "MINING_MONGO_URI": uri, "MINING_MONGO_DB": "mining", "MLFLOW_TRACKING_URI": tracking,
               "MINING_ADMIN_TOKEN": TOKEN, "MINING_STEP_RETRY_DELAY_SECONDS": "0",
               "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        os.environ.update(env)
        log = flights.write(scratch / "flights.csv", args.rows)
        write_project(projects, workspace)

        started = time.perf_counter()
        imported = cli_run(["import", str(log), "--project", NAME, "--source", "events", "--set-end-date"])
        seconds["import"] = time.perf_counter() - started
        print(f"    import: {seconds['import']:.1f} s", file=sys.stderr, flush=True)
        spec = load_spec(projects / NAME)
        end = spec.project.end_date
        first_day, last_sample = spec.project.start_date, end - dt.timedelta(days=HORIZON)
        mongo = MongoResource(uri=uri, database="mining")
        mlflow = MlflowResource(tracking_uri=tracking, artifact_location=str(scratch / "artifacts"))

        with endpoint({**os.environ, **env}) as url:
            runs = Runs(spec, {"mongo": mongo, "mlflow": mlflow,
                               "endpoint": EndpointResource(url=url, admin_token=TOKEN)})
            # The baseline first, on days of its own at the middle of the year: one run per day.
            middle = min(first_day + (end - first_day) / 2,  # a short --rows: days whose label window is there
                         last_sample - dt.timedelta(days=args.baseline_days - 1))
            probe = days(middle, middle + dt.timedelta(days=args.baseline_days - 1))
            window = days(max(first_day, middle - dt.timedelta(days=29)),
                          middle + dt.timedelta(days=args.baseline_days - 1))
            baseline = {"tiles": [runs.run("tiles", first=d) for d in window],
                        "features": [runs.run("features", first=d) for d in probe],
                        "samples": [runs.run("samples", first=d) for d in probe]}
            # The year, one run per asset (the baseline's days are recomputed with the rest).
            seconds["tiles"] = runs.run("tiles", first=first_day.isoformat(), last=end.isoformat())
            seconds["features"] = runs.run("features", first=first_day.isoformat(), last=end.isoformat())
            seconds["samples"] = runs.run("samples", first=first_day.isoformat(), last=last_sample.isoformat())
            seconds["model"] = runs.run("model", run_config={"ops": {f"{NAME}__model": {"config": {
                "validation_days": 7, "embargo_days": HORIZON, "use_sample_cache": False}}}})
            seconds["deployment"] = runs.run("deployment")
            # 100 aircraft of the last feature day (as_of: the end of `end`; an aircraft idle for 30 days has no
            # features, a 404). Not timed.
            last_as_of = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
            tails = [d["tailnum"] for d in mongo.project_db(NAME)[f"features_{SET}"].find(
                {"as_of": last_as_of}, {"tailnum": 1, "_id": 0}).limit(100)]
            started = time.perf_counter()
            answer = httpx.post(f"{url}/v1/{NAME}/predict", json={"entities": tails}, timeout=60)
            if answer.status_code != 200:
                raise RuntimeError(f"/v1/{NAME}/predict answered {answer.status_code}: {answer.text[:2000]}")
            seconds["prediction"] = time.perf_counter() - started
            scored = answer.json()
        database = mongo.project_db(NAME)
        counts = {name: database[f"{name}_{SET}"].estimated_document_count() for name in ("tiles", "features")}
        counts["samples"] = database["samples"].estimated_document_count() if "samples" in \
            database.list_collection_names() else sum(
                database[c].estimated_document_count() for c in database.list_collection_names()
                if c.startswith("samples"))
        model = runs.instance.fetch_materializations(dg.AssetKey([NAME, "model"]), limit=1).records[0]
        metadata = model.asset_materialization.metadata

    year_days = len(days(first_day, end))
    sample_days = len(days(first_day, last_sample))
    per_day = {name: statistics.median(values) for name, values in baseline.items()}
    scaled = seconds["import"] + per_day["tiles"] * year_days + per_day["features"] * year_days + \
        per_day["samples"] * sample_days + seconds["model"] + seconds["deployment"] + seconds["prediction"]
    total = sum(seconds.values())
    print(f"year: {args.rows:,} departures ({imported.splitlines()[0][:60]}…), {year_days} days "
          f"{first_day}..{end}, the embedded MongoDB")
    print(f"  {'import':<11} {seconds['import']:7.1f} s")
    print(f"  {'tiles':<11} {seconds['tiles']:7.1f} s   {counts['tiles']:,} tile documents, {year_days} days")
    print(f"  {'features':<11} {seconds['features']:7.1f} s   {counts['features']:,} documents, {year_days} days, "
          f"{len(FEATURES['features'])} features")
    print(f"  {'samples':<11} {seconds['samples']:7.1f} s   {counts['samples']:,} rows, {sample_days} days")
    auc = metadata.get("auc")
    print(f"  {'model':<11} {seconds['model']:7.1f} s   AUC {auc.value if auc else float('nan'):.3f}")
    print(f"  {'deployment':<11} {seconds['deployment']:7.1f} s")
    print(f"  {'prediction':<11} {seconds['prediction']:7.1f} s   {len(scored.get('predictions', []))} aircraft "
          f"scored by version {scored.get('model', {}).get('version')} (the request, with the endpoint's first load)")
    print(f"  total {total:7.1f} s = {total / 60:.1f} min   (goal <= {GOAL_SECONDS / 60:.0f} min: "
          f"{'met' if total <= GOAL_SECONDS else 'MISSED'})")
    print(f"  one day per run (medians of {len(baseline['tiles'])} tile days, {len(probe)} feature and sample days): "
          + ", ".join(f"{name} {value:.2f} s" for name, value in per_day.items()))
    print(f"  the year one day per run, scaled: {scaled:7.1f} s = {scaled / 60:.1f} min;  ratio {scaled / total:.1f}x "
          f"(goal >= {GOAL_RATIO:.0f}x: {'met' if scaled / total >= GOAL_RATIO else 'MISSED'})")


if __name__ == "__main__":
    main()
