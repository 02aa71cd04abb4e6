"""Batch scoring of a day (`<p>/predictions`) against a raw `inplace_predict` over the same feature matrix.

Setup: the embedded MongoDB, a local MLflow store, one committed day of the churn
project's two feature sets (17 features) for `--sizes` entities, and a champion trained
on synthetic rows (depth 6, 150 trees). For each size, median of `--repeat` runs of:

* the platform: `score_partitions` for the day: the audit record, the markers, the
  read of both feature sets' committed documents, the scoring with the version loaded as
  the endpoint loads it, the insert of one prediction document per entity, the count
  check, the commit marker; reported whole and per phase (read, score, write);
* the baseline: `Booster.inplace_predict` over the same matrix, already in memory.

Printed: rows per second of each, the ratio of the platform's scoring phase to the raw
call (the platform's own overhead on the model), and the read and write phases
separately (the database's share; SecantusDB is 20–100x slower than mongod at both).

    .venv/bin/python -m bench.scoring [--sizes 5000 20000] [--repeat 3]
"""

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mining_platform.predictions.batch import score_partitions
from mining_platform.serving.served_model import load_version
from mining_platform.spec import load_spec
from mining_platform.tools.embedded_mongo import secured_server
from resources import MlflowResource, MongoResource
from tests.fixtures.feature_days import publish_feature_day
from tests.fixtures.model_versions import register_synthetic_version, synthetic_rows

REPO = Path(__file__).resolve().parents[1]
DAY = "2024-03-02"
AS_OF = dt.datetime(2024, 3, 3, tzinfo=dt.timezone.utc)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = load_spec(REPO / "projects" / "churn")
    features = [name for d in spec.definitions for name in d.features]
    with tempfile.TemporaryDirectory() as scratch, secured_server(Path(scratch) / "mongo") as uri:
        mlflow = MlflowResource(tracking_uri=f"sqlite:///{scratch}/mlflow.db", artifact_location=f"{scratch}/artifacts")
        logged = register_synthetic_version(tracking_uri=mlflow.tracking_uri, artifact_location=mlflow.artifact_location,
                                            model_name=spec.project.model.name, features=features, seed=1,
                                            project=spec.name, rows=20_000, max_depth=6, rounds=150)
        model = load_version(mlflow.tracking_uri, logged.name, logged.version)
        model.booster.set_param({"nthread": os.cpu_count() or 1})
        print(f"{os.cpu_count()} cores; medians of {args.repeat} runs")
        print(f"{'entities':>9} {'platform rows/s':>16} {'read s':>7} {'score s':>8} {'write s':>8} "
              f"{'raw rows/s':>11} {'score rows/s':>13} {'score/raw':>10}")
        for size in args.sizes:
            mongo = MongoResource(uri=uri, database=f"bench_scoring_{size}")
            db = mongo.project_db(spec.name)
            X = synthetic_rows(features, size, seed=7)
            publish_feature_day(db, spec, partition=DAY, as_of=AS_OF,
                                columns={name: X[:, i] for i, name in enumerate(features)})
            totals, reads, scores, writes, raws = [], [], [], [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                [outcome] = score_partitions(db=db, analytics=mongo.analytics_project_db(spec.name), spec=spec,
                                             models={"champion": model}, partitions=[(DAY, AS_OF)],
                                             dagster_run_id=None, max_time_ms=600_000)
                totals.append(time.perf_counter() - started)
                assert outcome.committed and outcome.entities == size, outcome.error
                reads.append(outcome.read_seconds)
                scores.append(outcome.score_seconds)
                writes.append(outcome.write_seconds)
                matrix = np.ascontiguousarray(X)
                started = time.perf_counter()
                model.booster.inplace_predict(matrix, validate_features=False)
                raws.append(time.perf_counter() - started)
            total, read, score, write, raw = (statistics.median(v) for v in (totals, reads, scores, writes, raws))
            print(f"{size:>9} {size / total:>16.0f} {read:>7.2f} {score:>8.3f} {write:>8.2f} {size / raw:>11.0f} "
                  f"{size / score:>13.0f} {score / raw:>9.2f}x")


if __name__ == "__main__":
    main()
