"""What assets and sensors read from the Dagster instance: partitions with as_of, run liveness, the
latest materialisation's metadata, new materialisations, runs in flight."""

import datetime as dt
from collections.abc import Callable

import dagster as dg


def partitions_with_as_of(
    context: dg.AssetExecutionContext, partitions_def: dg.TimeWindowPartitionsDefinition
) -> list[tuple[str, dt.datetime]]:
    """The run's partition keys, each with its as_of: the end of its day (exclusive, UTC)."""
    return [(key, partitions_def.time_window_for_partition_key(key).end) for key in context.partition_keys]


def dagster_run_finished(instance: dg.DagsterInstance) -> Callable[[str], bool | None]:
    """Whether a Dagster run has finished; None when this instance does not know it."""

    def finished(run_id: str) -> bool | None:
        run = instance.get_run_by_id(run_id)
        return None if run is None else run.is_finished

    return finished


def latest_metadata_text(instance: dg.DagsterInstance, key: dg.AssetKey, name: str) -> str | None:
    """Metadata `name` of the asset's latest materialisation, as text; None when there is none or it lacks `name`."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    if materialization is None or name not in materialization.metadata:
        return None
    return str(materialization.metadata[name].value)


def metadata_history(instance: dg.DagsterInstance, key: dg.AssetKey, name: str, *, limit: int = 100) -> list[str]:
    """Metadata `name` of the asset's materialisations, newest first, as text (those lacking it skipped)."""
    page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=limit, ascending=False)
    values = []
    for record in page.records:
        materialization = record.asset_materialization
        if materialization is not None and name in materialization.metadata:
            values.append(str(materialization.metadata[name].value))
    return values


IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
PAGE = 1000


def new_materializations(instance: dg.DagsterInstance, key: dg.AssetKey, after: int) -> list[dg.EventLogRecord]:
    """Every materialisation of `key` with a storage id after `after`, oldest first."""
    records, cursor = [], None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=PAGE, cursor=cursor, ascending=True)
        records.extend(page.records)
        if not page.has_more:
            return records
        cursor = page.cursor


def runs_in_flight(instance: dg.DagsterInstance, *, limit: int = 100, job_name: str | None = None) -> list[dg.DagsterRun]:
    """Runs queued or running (of one job, when named)."""
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=limit))


def observed_data_versions(instance: dg.DagsterInstance, key: dg.AssetKey,
                           partitions: list[str] | None = None) -> dict[str, str]:
    """Partition key -> the data version of its latest observation (observations of a partitioned source); only
    of `partitions` when given (what a tick reads stays bounded however long the history)."""
    versions: dict[str, str] = {}
    cursor = None
    records = dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions)
    while True:
        page = instance.fetch_observations(records, limit=PAGE, cursor=cursor)
        for record in page.records:  # newest first
            observation = record.asset_observation
            if record.partition_key and observation is not None and observation.data_version is not None:
                versions.setdefault(record.partition_key, observation.data_version)
        if not page.has_more:
            return versions
        cursor = page.cursor


def materialization_history(instance: dg.DagsterInstance, key: dg.AssetKey, names: tuple[str, ...], *,
                            limit: int = 10_000) -> list[tuple[dt.datetime, dict[str, str]]]:
    """(time, {name: text}) of the asset's materialisations, oldest first (metadata it lacks is absent)."""
    page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=limit, ascending=True)
    history = []
    for record in page.records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        values = {name: str(materialization.metadata[name].value) for name in names if name in materialization.metadata}
        history.append((dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc), values))
    return history


def latest_partition_materializations(instance: dg.DagsterInstance, key: dg.AssetKey, *,
                                      limit: int = 1_000) -> dict[str, dg.EventLogRecord]:
    """Partition key -> its latest materialisation record (among the newest `limit` materialisations)."""
    page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=limit, ascending=False)
    latest: dict[str, dg.EventLogRecord] = {}
    for record in page.records:
        if record.partition_key:
            latest.setdefault(record.partition_key, record)
    return latest
