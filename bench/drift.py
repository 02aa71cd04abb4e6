"""A day's drift report against the least any report must do: read the day's feature documents.

For each size (entities in one committed day of the churn project's two feature sets,
17 features), median of interleaved repetitions of:

* the platform: `evaluate_day` — the markers, both feature sets read as Arrow columns
  (pymongoarrow) and outer-joined on the entity, PSI/KS per feature against the
  champion's reference, and the prediction-log query;
* the baseline: a raw `find` of the same committed documents of both sets into
  Python dicts (what any report needs to read), nothing computed.

It also times the `<p>_drift_sensor` tick that decides on a report, the part that runs
every 30 seconds. Printed: seconds and the platform/baseline ratio.

    .venv/bin/python -m bench.drift [--sizes 2000 20000] [--repeat 3]
"""

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from mining_platform.monitoring.report import evaluate_day
from mining_platform.registry.aliases import champion
from mining_platform.registry.reference import load_reference
from mining_platform.spec import ProjectSpec, load_spec
from mining_platform.spec.project import load_project
from mining_platform.store import markers
from mining_platform.tools.embedded_mongo import secured_server
from resources import MlflowResource, MongoResource
from sensors.definitions import project_definitions
from tests.fixtures.feature_days import publish_feature_day
from tests.fixtures.model_versions import register_synthetic_version, synthetic_rows

REPO = Path(__file__).resolve().parents[1]
DAY = "2024-03-02"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
AS_OF = dt.datetime(2024, 3, 3, tzinfo=dt.timezone.utc)


def raw_find(db, spec: ProjectSpec) -> int:
    read = 0
    for definition in spec.definitions:
        marker = markers.committed_partition(db, definition.name, AS_OF)
        read += len(list(db[definition.target].find({"as_of": AS_OF, "run_id": marker["run_id"]})))
    return read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    project = load_project(REPO / "projects" / "churn")
    spec = load_spec(REPO / "projects" / "churn")
    features = [name for d in spec.definitions for name in d.features]
    with tempfile.TemporaryDirectory() as scratch, secured_server(Path(scratch) / "mongo") as uri:
        mlflow = MlflowResource(tracking_uri=f"sqlite:///{scratch}/mlflow.db", artifact_location=f"{scratch}/artifacts")
        logged = register_synthetic_version(tracking_uri=mlflow.tracking_uri, artifact_location=mlflow.artifact_location,
                                            model_name=project.model.name, features=features, seed=1,
                                            project=project.name, rows=5000)
        mlflow.client().set_registered_model_alias(logged.name, "champion", logged.version)
        model = champion(mlflow.client(), project.model.name)
        reference = load_reference(mlflow.tracking_uri, model)
        print(f"{'entities':>9} {'report s':>9} {'raw find s':>11} {'ratio':>6} {'sensor tick s':>14} drifted")
        for size in args.sizes:
            mongo = MongoResource(uri=uri, database=f"bench_drift_{size}")
            db = mongo.project_db(spec.name)
            X = synthetic_rows(features, size, seed=7) * np.where(np.arange(len(features)) < 3, 1.6, 1.0)
            publish_feature_day(db, spec, partition=DAY, as_of=AS_OF,
                                columns={name: X[:, i] for i, name in enumerate(features)})
            platform, baseline = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                report = evaluate_day(db, spec, model, reference, partition=DAY, as_of=AS_OF)
                platform.append(time.perf_counter() - started)
                started = time.perf_counter()
                raw_find(db, spec)
                baseline.append(time.perf_counter() - started)
            tick = sensor_tick(spec, mlflow, mongo, report)
            p, b = statistics.median(platform), statistics.median(baseline)
            print(f"{size:>9} {p:>9.3f} {b:>11.3f} {p / b:>5.2f}x {tick:>14.3f} {len(report.drifted)} of {len(features)}")
            mongo.client().drop_database(db.name)


def sensor_tick(spec: ProjectSpec, mlflow: MlflowResource, mongo: MongoResource, report) -> float:
    """Seconds of one drift-sensor tick deciding on a freshly recorded report (median of 3)."""
    from assets.drift_report import report_metadata

    definitions = project_definitions(spec)
    sensor = definitions.resolve_sensor_def(f"{spec.project.name}_drift_sensor")
    reference = load_reference(mlflow.tracking_uri, report.champion)
    times = []
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=[spec.project.name, "drift_report"], partition=DAY, metadata=report_metadata(report, reference)))
        for _ in range(3):
            context = dg.build_sensor_context(instance=instance, resources={"mlflow": mlflow, "mongo": mongo},
                                              definitions=definitions)
            started = time.perf_counter()
            sensor.evaluate_tick(context)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    main()
