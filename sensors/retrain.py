"""The retrain request the drift and performance sensors launch: samples whose labels matured since the last build,
a model trained on every committed sample partition, its gate, and the deployment."""

import datetime as dt

import dagster as dg

from assets.keys import project_keys
from assets.model import GATE_CHECK
from mining_platform.spec import ProjectSpec
from mining_platform.spec.tags import RANGE_TAGS, retrain_job


def committed_feature_days(instance: dg.DagsterInstance, spec: ProjectSpec) -> set[str]:
    """The days every feature set has materialised."""
    return set.intersection(*(set(instance.get_materialized_partitions(key)) for key in project_keys(spec).feature_keys))


def matured_sample_range(instance: dg.DagsterInstance, spec: ProjectSpec,
                         complete: dt.date | None) -> tuple[str, str] | None:
    """The sample days after the last built one whose features are committed and whose label window is complete
    in the label source (its last day at or before `complete`, the source's last complete day).

    Contiguous from the first such day: a gap would fail the samples step and block the retrain.
    """
    k = project_keys(spec)
    built = instance.get_materialized_partitions(k.samples)
    feature_days = committed_feature_days(instance, spec)
    last_built = max(built) if built else None
    days = []
    for day in sorted(d for d in feature_days if last_built is None or d > last_built):
        start = dt.date.fromisoformat(day)
        # Sample T is labelled from [T + 1 day, T + 1 day + horizon): its as_of is the end of day T.
        window_last_day = start + spec.horizon
        previous = days[-1] if days else last_built
        contiguous = previous is None or dt.date.fromisoformat(previous) + dt.timedelta(days=1) == start
        if not contiguous or complete is None or window_last_day > complete:
            break
        days.append(day)
    return (days[0], days[-1]) if days else None


def retrain_request(instance: dg.DagsterInstance, spec: ProjectSpec, *, run_key: str, tags: dict[str, str],
                    complete: dt.date | None) -> dg.RunRequest:
    """`<p>_retrain_job` with the sample days that matured (a partition range), tagged with why."""
    k = project_keys(spec)
    tags = dict(tags)
    selection = [k.model, k.deployment]
    matured = matured_sample_range(instance, spec, complete)
    if matured:
        selection.insert(0, k.samples)
        tags[RANGE_TAGS[0]], tags[RANGE_TAGS[1]] = matured  # a range run's tags (RunRequest has no range)
    return dg.RunRequest(
        run_key=run_key,
        job_name=retrain_job(spec.name),
        asset_selection=selection,
        asset_check_keys=[dg.AssetCheckKey(k.model, GATE_CHECK)],
        tags=tags,
    )
