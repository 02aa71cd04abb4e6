"""Model training: the `<p>/model` asset against a raw `xgboost.train` on the same arrays.

For each size (synthetic committed sample rows, spread over 20 daily partitions with
the churn project's 17 features):

* the platform, cold: a whole in-process `materialize` of `churn/model` — loading the
  committed samples from the embedded MongoDB through pymongoarrow, training with
  early stopping, evaluation, plots, MLflow logging and registration (a local sqlite
  store), the champion comparison and the gate;
* the same after an earlier training: a retrain reads the unchanged committed
  partitions from the local Arrow cache instead of MongoDB;
* the baseline: `xgboost.train` with the same parameters, rounds and early stopping
  on the same arrays, already in memory (DMatrix construction included).

Ratio goal <= 1.2x at 1M rows. Medians of interleaved repetitions; the asset's own
phase timings show where the difference goes, and a plain cursor over the same
documents (left undecoded) shows how much of the load is the server's own floor.
With a usable CUDA GPU the CUDA path runs once more.

    .venv/bin/python -m bench.training [--sizes 100000 1000000] [--repeat 3]
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
import xgboost as xgb
from bson import CodecOptions
from bson.raw_bson import RawBSONDocument

from assets.model import build_model_asset
from mining_platform.samples.pipeline import committed_sample_markers
from mining_platform.spec import load_spec
from mining_platform.spec.project import load_project
from mining_platform.tools.embedded_mongo import secured_server
from mining_platform.training.booster import BoosterSettings, cuda_available
from mining_platform.training.dataset import load_training_data
from resources import MlflowResource, MongoResource
from tests.fixtures.sample_partitions import publish_synthetic_samples

REPO = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(20)]
EMBARGO_DAYS = 3
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def raw_xgboost(data, settings: BoosterSettings) -> tuple[float, int]:
    started = time.perf_counter()
    train = xgb.DMatrix(data.train.X, label=data.train.y, feature_names=data.features, missing=np.nan)
    validation = xgb.DMatrix(data.validation.X, label=data.validation.y, feature_names=data.features, missing=np.nan)
    booster = xgb.train(settings.params, train, num_boost_round=settings.num_boost_round,
                        evals=[(validation, "validation")], early_stopping_rounds=settings.early_stopping_rounds,
                        verbose_eval=False)
    return time.perf_counter() - started, booster.best_iteration


def raw_read(db, spec, markers) -> float:
    """The server's floor: the same documents through a plain cursor, left as undecoded BSON."""
    collection = db.client.get_database(db.name, codec_options=CodecOptions(document_class=RawBSONDocument))[spec.samples_collection]
    started = time.perf_counter()
    for marker in markers:
        for _ in collection.find({"as_of": marker["as_of"], "run_id": marker["run_id"]}, batch_size=10_000):
            pass
    return time.perf_counter() - started


def platform(spec, mongo, mlflow, device: str, *, cached: bool) -> tuple[float, dict]:
    config = {"embargo_days": EMBARGO_DAYS, "device": device, "use_sample_cache": cached}
    started = time.perf_counter()
    result = dg.materialize([build_model_asset(spec)], resources={"mongo": mongo, "mlflow": mlflow},
                            run_config={"ops": {"churn__model": {"config": config}}, **QUIET}, raise_on_error=False)
    elapsed = time.perf_counter() - started
    metadata = result.asset_materializations_for_node("churn__model")[0].metadata
    return elapsed, {"best_iteration": metadata["best_iteration"].value, "auc": metadata["auc"].value,
                     "phases": metadata["seconds"].value, "from_cache": metadata["partitions_from_cache"].value}


def bench_size(spec, mongo, mlflow, rows: int, repeat: int) -> None:
    db = mongo.project_db(spec.name)
    db[spec.samples_collection].drop()
    started = time.perf_counter()
    publish_synthetic_samples(db, spec, days=DAYS, rows_per_day=rows // len(DAYS), seed=11, signal=1.0)
    print(f"\n{rows:,} sample rows in {len(DAYS)} partitions (written in {time.perf_counter() - started:.0f}s), "
          f"median of {repeat}")
    training = spec.project.model.training
    data = load_training_data(db, spec, start=None, end=None, validation_days=training.validation_days,
                              embargo_days=EMBARGO_DAYS)
    settings = BoosterSettings.from_model_params(spec.project.model.params, task=spec.task_type, seed=training.seed, device="cpu",
                                                 early_stopping_rounds=training.early_stopping_rounds)
    markers = [m for m in committed_sample_markers(db, spec) if m["partition"] in data.sample_partitions]
    platform(spec, mongo, mlflow, "cpu", cached=True)  # fills the local partition cache for the warm runs
    raw_times, platform_times, phases, read_times, warm_times, warm_phases = [], [], [], [], [], []
    for _ in range(repeat):
        read_times.append(raw_read(db, spec, markers))
        seconds, raw_best = raw_xgboost(data, settings)
        raw_times.append(seconds)
        seconds, facts = platform(spec, mongo, mlflow, "cpu", cached=False)
        platform_times.append(seconds)
        phases.append(facts["phases"])
        seconds, warm = platform(spec, mongo, mlflow, "cpu", cached=True)
        assert warm["from_cache"] == len(markers), warm
        warm_times.append(seconds)
        warm_phases.append(warm["phases"])
    raw, ours, retrain = (statistics.median(t) for t in (raw_times, platform_times, warm_times))
    print(f"  train rows {data.train.rows:,}, validation rows {data.validation.rows:,}, best iteration: "
          f"raw {raw_best}, asset {facts['best_iteration']} (AUC {facts['auc']:.4f})")
    print(f"  raw xgboost.train (DMatrix + train)   {raw:8.2f} s")
    print(f"  churn/model materialize, cold         {ours:8.2f} s  {ours / raw:5.2f}x raw xgboost.train")
    phase_medians = {name: statistics.median(p[name] for p in phases) for name in phases[0]}
    print("    phases (median s): " + ", ".join(f"{name} {value:.2f}" for name, value in phase_medians.items()))
    print(f"  churn/model materialize, retrain      {retrain:8.2f} s  {retrain / raw:5.2f}x raw xgboost.train "
          "(unchanged partitions from the local cache)")
    warm_medians = {name: statistics.median(p[name] for p in warm_phases) for name in warm_phases[0]}
    print("    phases (median s): " + ", ".join(f"{name} {value:.2f}" for name, value in warm_medians.items()))
    read = statistics.median(read_times)
    print(f"  raw cursor over the same documents (undecoded BSON): {read:.2f} s; the asset's load is "
          f"{phase_medians['load'] / read:.2f}x that; the asset without the server's read floor is "
          f"{(ours - read) / raw:.2f}x raw xgboost.train")
    if cuda_available():
        cuda_settings = BoosterSettings(params={**settings.params, "device": "cuda"},
                                        num_boost_round=settings.num_boost_round,
                                        early_stopping_rounds=settings.early_stopping_rounds)
        seconds, _ = raw_xgboost(data, cuda_settings)
        cuda_ours, _ = platform(spec, mongo, mlflow, "cuda", cached=True)
        print(f"  CUDA: raw {seconds:.2f} s, asset {cuda_ours:.2f} s ({cuda_ours / seconds:.2f}x)")
    else:
        print("  CUDA: no usable CUDA GPU on this machine; the CUDA path was not run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    project = load_project(REPO / "projects" / "churn")
    spec = load_spec(REPO / "projects" / "churn")
    with tempfile.TemporaryDirectory() as scratch, secured_server(Path(scratch) / "mongo") as uri:
        os.environ["MINING_HOME"] = f"{scratch}/home"  # the asset's partition cache lives there
        mongo = MongoResource(uri=uri, database="bench_training")
        mlflow = MlflowResource(tracking_uri=f"sqlite:///{scratch}/mlflow.db", artifact_location=f"{scratch}/artifacts")
        print(f"training: churn model ({project.model.params}) on the embedded MongoDB (SecantusDB), "
              f"local MLflow store, {len(spec.feature_columns)} features")
        for rows in args.sizes:
            bench_size(spec, mongo, mlflow, rows, args.repeat)


if __name__ == "__main__":
    main()
