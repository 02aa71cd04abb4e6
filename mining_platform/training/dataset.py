"""Loading committed samples as columns (pymongoarrow) and splitting them by time."""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pymongo.collection import Collection
from pymongo.database import Database

from mining_platform.samples.pipeline import committed_sample_markers
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.committed import committed_rows
from mining_platform.store.columns import NUMERIC_TYPES, Schema, find_arrow_all
from mining_platform.training.partition_cache import PartitionCache

READ_CONCURRENCY = 4  # partitions read at once


class TrainingDataError(ValueError):
    """The committed samples cannot train a model as configured; the message says why."""


@dataclass(frozen=True)
class Split:
    """One side of the time split: feature matrix (NaN = missing), labels and their as_of."""

    X: np.ndarray
    y: np.ndarray
    as_of: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.y)

    def partitions(self) -> tuple[str, str]:
        """First and last partition key (a partition's as_of is the end of its day)."""
        one_day = np.timedelta64(1, "D")
        first, last = self.as_of.min() - one_day, self.as_of.max() - one_day
        return str(first.astype("datetime64[D]")), str(last.astype("datetime64[D]"))


@dataclass(frozen=True)
class TrainingData:
    features: list[str]
    train: Split
    validation: Split
    feature_versions: dict[str, dict]
    sample_partitions: list[str]
    embargo_days: int
    partitions_cached: int = 0


def model_features(spec: ProjectSpec) -> list[str]:
    """The features the model uses, in order: every feature of every set (the loader admits only int, float
    and bool features, what XGBoost takes)."""
    used = [name for name in spec.feature_columns if spec.feature_type(name) in NUMERIC_TYPES]
    if len(used) != len(spec.feature_columns):  # a spec built around the loader
        raise TrainingDataError(f"{spec.project.name}: non-numeric features cannot train: "
                                f"{sorted(set(spec.feature_columns) - set(used))}")
    return used


def _feature_versions(markers: list[dict]) -> dict[str, dict]:
    """The feature versions every partition was built from; refuses partitions built from different ones."""
    seen: dict[str, dict[tuple, list[str]]] = {}
    for marker in markers:
        for name, built in marker["features"].items():
            seen.setdefault(name, {}).setdefault((built["version"], built["hash"]), []).append(marker["partition"])
    problems = []
    for name, versions in seen.items():
        built_from = [days for days in versions.values()]
        if len(versions) > 1:
            problems.append(f"{name}: " + "; ".join(
                f"v{version} ({days[0]} .. {days[-1]})" for (version, _), days in versions.items()))
        elif len(built_from[0]) < len(markers):
            problems.append(f"{name}: only in {len(built_from[0])} of {len(markers)} partitions")
    if problems:
        raise TrainingDataError(
            "the sample partitions were built from different feature sets or versions, so a column would mean "
            "two things: " + " | ".join(problems) + ". Rematerialise the older sample partitions (or narrow the range)."
        )
    return {name: {"version": version, "hash": digest} for name, versions in seen.items() for version, digest in versions}


def load_training_data(
    db: Database,
    spec: ProjectSpec,
    *,
    start: dt.date | None,
    end: dt.date | None,
    validation_days: int,
    embargo_days: int,
    cache_root: Path | None = None,
) -> TrainingData:
    """Committed sample partitions in [start, end], split by time.

    Validation is the latest `validation_days` partitions. Training is every partition at
    least `embargo_days` before the first validation day, so no training label window
    overlaps the validation label windows (with the default embargo of one horizon).
    With `cache_root`, partitions read before come from local Arrow files (see partition_cache).
    """
    markers = committed_sample_markers(db, spec, start=start, end=end)
    wanted = f"[{start or 'first'}, {end or 'last'}]"
    if not markers:
        raise TrainingDataError(f"no committed sample partitions of {names.samples_pipeline(spec.name)} in {wanted}; "
                                f"materialise {names.shown(spec.asset_path('samples'))} first")
    if len(markers) <= validation_days:
        raise TrainingDataError(f"{len(markers)} committed sample partitions in {wanted}; {validation_days} go to "
                                f"validation, so at least {validation_days + 1} are needed")
    feature_versions = _feature_versions(markers)
    validation_markers = markers[-validation_days:]
    cutoff = validation_markers[0]["as_of"] - dt.timedelta(days=embargo_days)
    train_markers = [m for m in markers[:-validation_days] if m["as_of"] <= cutoff]
    if not train_markers:
        raise TrainingDataError(
            f"no sample partition in {wanted} is at least {embargo_days} days (embargo_days) before the first "
            f"validation partition {validation_markers[0]['partition']}; add earlier partitions or lower "
            f"model.training.embargo_days (0 lets training labels overlap the validation window)"
        )

    features = model_features(spec)
    chosen = train_markers + validation_markers
    collection = db[spec.samples_collection]
    entity = spec.project.entity
    columns = {"as_of": pa.timestamp("ms", tz="UTC"), spec.label: pa.float64(),
               **{name: NUMERIC_TYPES[spec.feature_type(name)] for name in features}}
    # A stable row order makes training reproducible whatever order the server returns: (as_of, entity). Ids of
    # one type (what each marker records) are read as that column type and sorted here; mixed or unrecorded
    # types are read in entity order from each partition's unique index instead (slower on some servers).
    id_type = _entity_type(chosen)
    if id_type is not None:
        table, partitions_cached = _read_with_cache(db, spec, collection, chosen,
                                                    Schema({**columns, entity: id_type}), cache_root)
        table = table.sort_by([("as_of", "ascending"), (entity, "ascending")])
    else:
        table, partitions_cached = _read_with_cache(db, spec, collection, chosen, Schema(columns), cache_root,
                                                    sort_by=entity)
    if table.column(spec.label).null_count:
        raise TrainingDataError(f"{spec.samples_collection}: {table.column(spec.label).null_count} rows have no {spec.label!r} label")
    is_validation = pc.greater_equal(table.column("as_of"), pa.scalar(validation_markers[0]["as_of"], pa.timestamp("ms", tz="UTC")))
    return TrainingData(
        features=features,
        train=_split(table.filter(pc.invert(is_validation)), features, spec.label),
        validation=_split(table.filter(is_validation), features, spec.label),
        feature_versions=feature_versions,
        sample_partitions=[m["partition"] for m in chosen],
        embargo_days=embargo_days,
        partitions_cached=partitions_cached,
    )


def _entity_type(markers: list[dict]) -> pa.DataType | None:
    """The one Arrow type of the partitions' entity ids (string or int64), from the types their markers record."""
    if not all("entity_types" in m for m in markers):
        return None
    types = {t for m in markers for t in m["entity_types"]}
    if types == {"string"}:
        return pa.string()
    if types and types <= {"int", "long"}:
        return pa.int64()
    return None


def _read_with_cache(db: Database, spec: ProjectSpec, collection: Collection, markers: list[dict], schema: Schema,
                     cache_root: Path | None, *, sort_by: str | None = None) -> tuple[pa.Table, int]:
    cache = None
    if cache_root is not None:
        cache = PartitionCache(cache_root, collection=f"{db.name}.{spec.samples_collection}", schema=schema.to_arrow())
        cache.evict_except({m["run_id"] for m in committed_sample_markers(db, spec)})
    return _read_partitions(collection, markers, schema, cache, sort_by=sort_by)


def _read_partitions(
    collection: Collection, markers: list[dict], schema: Schema, cache: PartitionCache | None, *,
    sort_by: str | None = None,
) -> tuple[pa.Table, int]:
    """Every committed row of the partitions, decoded straight into Arrow columns; (table, partitions cached).

    One cursor per partition not in the cache, a few at a time: the server produces one
    batch while pymongoarrow decodes another. No projection: a sample document is the
    training row (plus run_id and feature_versions), the schema skips what is not in
    it, and a server-side projection costs more than the few bytes it saves. With `sort_by`,
    each partition is read in that field's order.
    """
    def read(marker: dict) -> pa.Table:
        table = find_arrow_all(collection, committed_rows(marker),
                               schema=schema, projection=None, batch_size=10_000,
                               sort=[(sort_by, 1)] if sort_by else None)
        if table.num_rows != marker["documents"]:  # replaced (and swept) while we read it
            raise TrainingDataError(
                f"sample partition {marker['partition']} changed while loading ({table.num_rows} of "
                f"{marker['documents']} rows of run {marker['run_id']}); materialise the model again"
            )
        if cache is not None:
            cache.put(marker, table)
        return table

    cached = {m["run_id"]: cache.get(m) for m in markers} if cache is not None else {}
    missing = [m for m in markers if cached.get(m["run_id"]) is None]
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        fetched = dict(zip((m["run_id"] for m in missing), pool.map(read, missing)))
    tables = [fetched[m["run_id"]] if m["run_id"] in fetched else cached[m["run_id"]] for m in markers]
    return pa.concat_tables(tables), len(markers) - len(missing)


def _split(table: pa.Table, features: list[str], label: str) -> Split:
    columns = [table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False) for name in features]
    X = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
    return Split(
        X=np.ascontiguousarray(X, dtype=np.float64),
        y=table.column(label).to_numpy().astype(np.float64),
        as_of=table.column("as_of").to_numpy(zero_copy_only=False).astype("datetime64[ms]"),
    )
