"""Synthetic committed sample partitions with a known signal, for training tests and benchmarks.

Rows go through the same audit and commit path as built samples (a `pipeline_runs`
record, `$merge`-equivalent tagging with the run id, a marker in `sample_partitions`),
so training reads them exactly as it reads real ones.
"""

import datetime as dt

import numpy as np
from pymongo.database import Database

from mining_platform.features import publication, runs
from mining_platform.training.samples import SAMPLE_PARTITIONS, SampleSpec, ensure_sample_indexes

INSERT_BATCH = 10_000


def synthetic_rows(spec: SampleSpec, *, as_of: dt.datetime, rows: int, rng: np.random.Generator, signal: float) -> list[dict]:
    """Rows whose label depends on a few features with strength `signal` (0 = labels are noise)."""
    features = spec.feature_columns
    values = rng.gamma(shape=2.0, scale=3.0, size=(rows, len(features))).round(3)
    values[rng.random(values.shape) < 0.02] = np.nan  # some missing values, as real features have
    informative = np.nan_to_num(values[:, : min(4, len(features))], nan=6.0)
    logit = signal * ((informative - 6.0) / 4.2).mean(axis=1) * 3.0
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return [
        {
            spec.project.entity: f"user-{i:07d}",
            **{name: (None if np.isnan(v) else float(v)) for name, v in zip(features, row)},
            spec.label: int(label),
            "as_of": as_of,
            "feature_versions": {d.name: d.version for d in spec.definitions},
        }
        for i, (row, label) in enumerate(zip(values, labels))
    ]


def publish_synthetic_samples(
    db: Database, spec: SampleSpec, *, days: list[dt.date], rows_per_day: int, seed: int, signal: float = 1.0
) -> int:
    """Write and commit one synthetic partition per day (replacing what it held); returns rows written."""
    rng = np.random.default_rng(seed)
    ensure_sample_indexes(db, spec)
    lease = dt.timedelta(minutes=10)
    written = 0
    for day in days:
        as_of = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
        run_id = runs.enqueue(db, spec, project=spec.project.name, partition=day.isoformat(), as_of=as_of,
                              window_start=as_of, dagster_run_id=None, lease=lease)
        runs.start(db, run_id, lease=lease)
        started = dt.datetime.now(dt.timezone.utc)
        rows = synthetic_rows(spec, as_of=as_of, rows=rows_per_day, rng=rng, signal=signal)
        for row in rows:
            row["run_id"] = run_id
        for i in range(0, len(rows), INSERT_BATCH):
            db[spec.target].insert_many(rows[i : i + INSERT_BATCH], ordered=False)
        publication.commit(
            db.client, db, spec, partition=day.isoformat(), as_of=as_of, run_id=run_id, documents=len(rows),
            succeeded_update=runs.succeeded_update(documents_written=len(rows), bytes_returned=0, started=started),
            markers=SAMPLE_PARTITIONS,
            marker_fields={
                "features": {d.name: {"run_id": "synthetic", "version": d.version, "hash": d.content_hash}
                             for d in spec.definitions},
                "label": {"name": spec.label, "synthetic": True},
                "positives": sum(row[spec.label] for row in rows),
            },
        )
        publication.sweep(db, spec, as_of, markers=SAMPLE_PARTITIONS)
        written += len(rows)
    return written
