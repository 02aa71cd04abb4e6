"""One execution of a feature pipeline over a run's partitions: audit, aggregate, check, publish."""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.database import Database
from pymongo.errors import PyMongoError

from mining_platform.features import publication, runs
from mining_platform.features.contracts import ContractReport, evaluate_contracts
from mining_platform.features.definition import FeatureDefinition
from mining_platform.features.parameters import parameter_values, substitute
from mining_platform.features.registry import FeatureVersionConflict, register
from mining_platform.project import ProjectConfig
from mining_platform.resources import MongoResource
from mining_platform.resources.mongo_traffic import measure_reply_bytes

# A RUNNING record's lease covers one phase (bounded by maxTimeMS) plus this much slack.
LEASE_GRACE = dt.timedelta(seconds=60)


class ContractViolation(RuntimeError):
    """A run's documents broke the definition's contract; they are not published."""


@dataclass
class PartitionOutcome:
    partition: str
    as_of: dt.datetime
    run_id: str
    committed: bool = False
    documents_written: int = 0
    duration_seconds: float = 0.0
    bytes_returned: int = 0
    error: str | None = None
    transient: bool = False  # the error was a passing outage (see resilience)
    contracts: ContractReport | None = None
    replaced_run_id: str | None = None


@dataclass
class ExecutionReport:
    definition: FeatureDefinition
    outcomes: list[PartitionOutcome] = field(default_factory=list)
    newly_registered: bool = False
    abandoned_runs: list[str] = field(default_factory=list)
    first_match_index: str | None = None
    first_match_plan: str = "not explained"

    @property
    def failed(self) -> list[PartitionOutcome]:
        return [o for o in self.outcomes if not o.committed]


def explain_first_match(analytics: Database, source: str, stages: list[dict]) -> tuple[str | None, str]:
    """(index name or None, a one-line description) for the pipeline's leading `$match`."""
    if not stages or "$match" not in stages[0]:
        return None, "the pipeline does not start with $match"
    try:
        plan = analytics.command(
            "explain", {"aggregate": source, "pipeline": [stages[0]], "cursor": {}}, verbosity="queryPlanner"
        )
    except PyMongoError as exc:
        return None, f"explain failed: {exc}"
    scans = list(_plan_stages(plan))
    indexes = sorted({s.get("indexName", "?") for s in scans if s.get("stage") in ("IXSCAN", "EXPRESS_IXSCAN")})
    if indexes:
        return indexes[0], f"IXSCAN on {', '.join(indexes)}"
    if any(s.get("stage") == "COLLSCAN" for s in scans):
        return None, "COLLSCAN: no index serves the leading $match"
    return None, "no scan stage found in the plan"


def _plan_stages(node):
    """Every stage of the winning plans in an explain document (sharded or not)."""
    if isinstance(node, dict):
        if "stage" in node:
            yield node
        for key, value in node.items():
            if key != "rejectedPlans":
                yield from _plan_stages(value)
    elif isinstance(node, list):
        for item in node:
            yield from _plan_stages(item)


def run_feature_pipeline(
    *,
    mongo: MongoResource,
    project: ProjectConfig,
    definition: FeatureDefinition,
    partitions: list[tuple[str, dt.datetime]],
    dagster_run_id: str | None,
    max_time_ms: int,
    log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
    dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None,
) -> ExecutionReport:
    """Compute and publish each (partition key, as_of) in turn; one failing partition does not stop the rest.

    Raises only when nothing may run at all (a version conflict in the registry) or when
    interrupted; per-partition failures are in the report's outcomes and in pipeline_runs.
    """
    db = mongo.db()
    lease = dt.timedelta(milliseconds=max_time_ms) + LEASE_GRACE
    report = ExecutionReport(definition=definition)
    runs.ensure_run_indexes(db)
    publication.ensure_target_indexes(db, definition, entity=project.entity)

    for record in runs.reconcile_abandoned(db, definition.name, dagster_run_finished=dagster_run_finished):
        report.abandoned_runs.append(record["_id"])
        removed = publication.sweep(db, definition, record["trigger"]["as_of"])
        log.warning(f"pipeline run {record['_id']} ({record['trigger']['partition']}) was abandoned; "
                    f"marked FAILED, {removed} unpublished documents removed")

    outcomes = [
        PartitionOutcome(
            partition=key,
            as_of=as_of,
            run_id=runs.enqueue(
                db, definition, project=project.name, partition=key, as_of=as_of,
                window_start=_values(definition, as_of)["window_start"],
                dagster_run_id=dagster_run_id, lease=lease,
            ),
        )
        for key, as_of in partitions
    ]
    report.outcomes = outcomes
    try:
        report.newly_registered = register(db, definition, project=project.name)
        first = substitute(definition.pipeline, _values(definition, partitions[0][1]))
        report.first_match_index, report.first_match_plan = explain_first_match(
            mongo.analytics_db(), definition.source, first
        )
        for number, outcome in enumerate(outcomes):
            # The partitions still queued wait on this process: keep them from looking abandoned.
            runs.renew_leases(db, [o.run_id for o in outcomes[number:]], lease=lease)
            _run_partition(mongo, project, definition, outcome, max_time_ms=max_time_ms, lease=lease, log=log)
    except FeatureVersionConflict as exc:
        for outcome in outcomes:
            outcome.error = f"refused before writing: {exc}"
            runs.fail(db, outcome.run_id, error_message=outcome.error)
        raise
    finally:
        # Whatever stopped the loop (a registry conflict, an interrupt), no record stays unfinished.
        for outcome in outcomes:
            if not outcome.committed and outcome.error is None:
                outcome.error = "not run: the execution stopped before this partition"
                runs.fail(db, outcome.run_id, error_message=outcome.error)
    return report


def _values(definition: FeatureDefinition, as_of: dt.datetime) -> dict:
    return parameter_values(as_of=as_of, window_days=definition.window_days, declared=definition.parameters)


def _run_partition(
    mongo: MongoResource,
    project: ProjectConfig,
    definition: FeatureDefinition,
    outcome: PartitionOutcome,
    *,
    max_time_ms: int,
    lease: dt.timedelta,
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    db = mongo.db()
    stages = substitute(definition.pipeline, _values(definition, outcome.as_of)) + publication.write_stages(
        definition, entity=project.entity, as_of=outcome.as_of, run_id=outcome.run_id
    )
    with publication.attempt(db, definition, outcome, log=log):
        runs.start(db, outcome.run_id, lease=lease)
        started = dt.datetime.now(dt.timezone.utc)
        with measure_reply_bytes() as replies:
            # The $merge runs server-side: the cursor comes back empty.
            list(mongo.analytics_db()[definition.source].aggregate(
                stages, allowDiskUse=True, maxTimeMS=max_time_ms,
                comment=f"mining-platform {definition.name} v{definition.version} run {outcome.run_id}",
            ))
        outcome.bytes_returned = replies.total
        runs.renew_lease(db, outcome.run_id, lease=lease)
        outcome.contracts = evaluate_contracts(
            db, definition, entity=project.entity, as_of=outcome.as_of, run_id=outcome.run_id, max_time_ms=max_time_ms
        )
        outcome.documents_written = outcome.contracts.documents
        if outcome.contracts.problems:
            raise ContractViolation("contract violated: " + "; ".join(outcome.contracts.problems))
        runs.renew_lease(db, outcome.run_id, lease=lease)
        outcome.replaced_run_id = publication.commit(
            mongo.client(), db, definition,
            partition=outcome.partition, as_of=outcome.as_of, run_id=outcome.run_id,
            documents=outcome.documents_written,
            succeeded_update=runs.succeeded_update(
                documents_written=outcome.documents_written, bytes_returned=outcome.bytes_returned, started=started
            ),
        )
        outcome.committed = True
        log.info(f"{definition.name} {outcome.partition}: {outcome.documents_written} documents published "
                 f"(run {outcome.run_id})")
