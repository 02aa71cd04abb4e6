"""`<p>_drift_sensor`: a drift report for each newly committed feature day, and a retrain when it drifted.

Two steps per tick, each remembered in the JSON cursor:

1. Feature materialisations since the cursor: when the newest day they touch is
   complete (every feature set committed), request `<p>/drift_report` for that day.
   Older days (a backfill) get no automatic report: their drift says nothing about
   what the endpoint is scoring now.
2. Drift reports since the cursor: the newest one decides. With at least
   `min_drifted_features` features over `psi_threshold`, and the champion still the
   version it was measured against, one RunRequest for `<p>_retrain_job`.

Run keys are deterministic (`drift:<p>:<partition>:<champion version>`): a tick
evaluated again after a crash, before its cursor was stored, asks for the same key,
and Dagster launches a key only once.
"""

import dataclasses
import datetime as dt

import dagster as dg

from assets.instance import new_materializations, runs_in_flight
from assets.keys import project_keys
from mining_platform.monitoring.decision import drift_summary, drifted_features, needs_retrain
from mining_platform.registry.aliases import champion
from mining_platform.sources.observe import complete_through, watermark
from mining_platform.spec import ProjectSpec
from mining_platform.spec.tags import CAUSE_TAG, DRIFT_TAG_PREFIX, drift_report_job, retrain_job, sensor_name
from resources import MlflowResource, MongoResource
from sensors.cursor import dump_cursor, load_cursor
from sensors.retrain import committed_feature_days, retrain_request


@dataclasses.dataclass
class DriftCursor:
    features_event: int = 0  # storage id of the last feature materialisation seen
    reported_partition: str | None = None  # newest day a report was requested for
    report_event: int = 0  # storage id of the last drift report seen
    decided_partition: str | None = None  # newest day whose report was decided on


def drift_retrain_request(instance: dg.DagsterInstance, spec: ProjectSpec, *, partition: str, version: str,
                          drifted: dict[str, float], complete: dt.date | None) -> dg.RunRequest:
    tags = {
        CAUSE_TAG: "drift",
        f"{DRIFT_TAG_PREFIX}partition": partition,
        f"{DRIFT_TAG_PREFIX}champion_version": version,
        f"{DRIFT_TAG_PREFIX}features": ",".join(drifted),
        **{f"{DRIFT_TAG_PREFIX}psi.{name}": f"{psi:.4f}" for name, psi in drifted.items()},
    }
    return retrain_request(instance, spec, run_key=f"drift:{spec.name}:{partition}:{version}", tags=tags,
                           complete=complete)


def build_drift_sensor(spec: ProjectSpec, jobs: list) -> dg.SensorDefinition:
    project = spec.project
    k = project_keys(spec)

    @dg.sensor(
        name=sensor_name(project.name, "drift"),
        jobs=[job for job in jobs if job.name in (drift_report_job(project.name), retrain_job(project.name))],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"When a feature day is committed, requests its `{project.name}/drift_report`; when the newest "
        f"report has at least {project.drift.min_drifted_features} features over PSI {project.drift.psi_threshold} "
        f"against the champion it was measured with, launches `{retrain_job(project.name)}` tagged with the "
        "drifted features and their PSI.",
    )
    def drift_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowResource, mongo: MongoResource) -> dg.SensorResult:
        instance = context.instance
        cursor = load_cursor(DriftCursor, context.cursor, context.log)
        requests, notes = [], []
        current = champion(mlflow.client(), project.model.name)

        # 1. New committed feature days → the newest one's drift report.
        touched: set[str] = set()
        for key in k.feature_keys:
            for record in new_materializations(instance, key, cursor.features_event):
                cursor.features_event = max(cursor.features_event, record.storage_id)
                if record.partition_key:
                    touched.add(record.partition_key)
        if touched:
            complete = committed_feature_days(instance, spec)
            ready = sorted(day for day in touched if day in complete)
            newest = ready[-1] if ready else None
            if newest and (cursor.reported_partition is None or newest >= cursor.reported_partition):
                cursor.reported_partition = newest
                if current is None:
                    notes.append(f"features of {newest} committed, but {project.model.name} has no champion to "
                                 "compare with: no drift report requested")
                else:
                    requests.append(dg.RunRequest(
                        run_key=f"report:{project.name}:{newest}:{cursor.features_event}",
                        job_name=drift_report_job(project.name),
                        partition_key=newest,
                        tags={CAUSE_TAG: "features_committed"},
                    ))
            elif ready:
                notes.append(f"features of {ready[0]}..{ready[-1]} committed; older than {cursor.reported_partition}, "
                             "so no automatic drift report")

        # 2. New drift reports → the newest one decides.
        reports = new_materializations(instance, k.drift_report, cursor.report_event)
        if reports:
            cursor.report_event = max(r.storage_id for r in reports)
            latest = max(reports, key=lambda r: (r.partition_key or "", r.storage_id))
            decision = _decide(instance, spec, latest, cursor, current, mongo)
            if isinstance(decision, dg.RunRequest):
                requests.append(decision)
            else:
                notes.append(decision)
        elif not requests and not notes:
            notes.append("no new feature partition and no new drift report")
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None if requests else dg.SkipReason("; ".join(notes)),
            cursor=dump_cursor(cursor),
        )

    def _decide(instance, spec, record, cursor: DriftCursor, current, mongo: MongoResource) -> dg.RunRequest | str:
        partition = record.partition_key
        metadata = record.asset_materialization.metadata
        if cursor.decided_partition and partition < cursor.decided_partition:
            return f"drift report {partition} is older than {cursor.decided_partition}, already decided on"
        cursor.decided_partition = partition
        version = str(metadata["champion_version"].value)
        psi = metadata["psi"].value
        drifted = drifted_features(psi, project.drift)
        summary = f"{partition} against v{version}: {drift_summary(drifted, len(psi), project.drift)}"
        if not needs_retrain(drifted, project.drift):
            return f"{summary}; {project.drift.min_drifted_features} needed to retrain"
        if current is None or current.version != version:
            now = f"v{current.version}" if current else "no version"
            return f"{summary}, but the champion is {now} now: waiting for a report against it"
        running = runs_in_flight(instance, job_name=retrain_job(project.name), limit=5)
        if running:
            return f"{summary}, but retrain run {running[0].run_id} is still in flight"
        source = spec.label_source
        complete = complete_through(watermark(mongo.db(), source), source.lateness_days)
        return drift_retrain_request(instance, spec, partition=partition, version=version, drifted=drifted,
                                     complete=complete)

    return drift_sensor
