"""Synthetic committed feature partitions with chosen values, for drift tests and benchmarks.

Documents go through the same audit and commit path as a pipeline run (a
`pipeline_runs` record, the run id on every document, a marker in
`feature_partitions`), so readers see them exactly as they see computed features.
"""

import datetime as dt

import numpy as np
from pymongo import MongoClient
from pymongo.database import Database

from mining_platform.features import publication, runs
from mining_platform.training.samples import SampleSpec

INSERT_BATCH = 10_000


def publish_feature_day(client: MongoClient, db: Database, spec: SampleSpec, *, partition: str, as_of: dt.datetime,
                        columns: dict[str, np.ndarray]) -> int:
    """Commit `partition` of every feature set from `columns` (one array per feature, NaN = field absent).

    Entity i is `u{i:07d}`; returns the documents written per feature set.
    """
    rows = len(next(iter(columns.values())))
    lease = dt.timedelta(minutes=10)
    for definition in spec.definitions:
        publication.ensure_target_indexes(db, definition, entity=spec.project.entity)
        run_id = runs.enqueue(db, definition, project=spec.project.name, partition=partition, as_of=as_of,
                              window_start=as_of - dt.timedelta(days=definition.window_days), dagster_run_id=None,
                              lease=lease)
        runs.start(db, run_id, lease=lease)
        started = dt.datetime.now(dt.timezone.utc)
        names = [name for name in definition.features if name in columns]
        documents = [
            {spec.project.entity: f"u{i:07d}", "as_of": as_of, "run_id": run_id, "pipeline_version": definition.version,
             **{name: float(columns[name][i]) for name in names if not np.isnan(columns[name][i])}}
            for i in range(rows)
        ]
        for start in range(0, len(documents), INSERT_BATCH):
            db[definition.target].insert_many(documents[start : start + INSERT_BATCH], ordered=False)
        publication.commit(client, db, definition, partition=partition, as_of=as_of, run_id=run_id,
                           documents=len(documents),
                           succeeded_update=runs.succeeded_update(documents_written=len(documents), bytes_returned=0,
                                                                  started=started))
        publication.sweep(db, definition, as_of)
    return rows
