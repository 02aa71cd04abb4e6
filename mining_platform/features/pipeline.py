"""A feature pipeline's partitions, run by the partition loop: aggregate in MongoDB, check the contract, publish."""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.database import Database
from pymongo.errors import PyMongoError

from mining_platform.features.contracts import ContractReport, evaluate_contracts
from mining_platform.sources.observe import source_database
from mining_platform.spec.definition import FeatureDefinition, OutputBoundExceeded
from mining_platform.spec.names import FEATURE_MARKERS
from mining_platform.spec.parameters import parameter_values, substitute
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.stages import expansion_problems
from mining_platform.store import markers
from mining_platform.store.job import Aggregation, PartitionOutcome
from mining_platform.store.loop import run_partitions
from mining_platform.store.versions import register


class ContractViolation(RuntimeError):
    """A run's documents broke the definition's contract; they are not published."""


@dataclass
class FeatureOutcome(PartitionOutcome):
    contracts: ContractReport | None = None


@dataclass
class ExecutionReport:
    definition: FeatureDefinition
    outcomes: list[FeatureOutcome] = field(default_factory=list)
    newly_registered: bool = False
    abandoned_runs: list[str] = field(default_factory=list)
    first_match_index: str | None = None
    first_match_plan: str = "not explained"

    @property
    def failed(self) -> list[FeatureOutcome]:
        return [o for o in self.outcomes if not o.committed]


def write_stages(definition: FeatureDefinition, *, entity: str, as_of: dt.datetime, run_id: str,
                 database: str | None = None) -> list[dict]:
    """The stages the platform appends: keep the declared features, tag them, `$merge` them (into the platform
    `database`, named because the source may live in another one)."""
    return [
        # One past the bound: a run over it is caught by `verify` without writing without end.
        {"$limit": definition.bounds.max_documents + 1},
        {"$project": {
            "_id": 0,
            entity: "$_id",
            **{feature: 1 for feature in definition.features},
            "as_of": {"$literal": as_of},
            "run_id": {"$literal": run_id},
            "pipeline_version": {"$literal": definition.version},
        }},
        markers.merge_stage(definition.target, entity=entity, database=database),
    ]


def explain_first_match(analytics: Database, source: str, stages: list[dict]) -> tuple[str | None, str]:
    """(index name or None, a one-line description) for the pipeline's leading `$match` on `source` in `analytics`."""
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


class FeatureJob:
    """A feature definition's partitions for the partition loop; remembers what `prepare` learnt."""

    markers = FEATURE_MARKERS
    scratch = ()

    def __init__(self, project: ProjectConfig, definition: FeatureDefinition, report: ExecutionReport,
                 sources: Database):
        self.pipeline = definition
        self.sources = sources
        self.project = project.name
        self.entity = project.entity
        self.source = project.sources[definition.source]
        self.report = report

    def _values(self, as_of: dt.datetime) -> dict:
        d = self.pipeline
        return parameter_values(as_of=as_of, window_days=d.window_days, declared=d.parameters)

    def ensure_indexes(self, db: Database) -> None:
        markers.ensure_partition_index(db, self.pipeline.target, entity=self.entity)
        markers.ensure_marker_index(db, self.markers)

    def new_outcome(self, partition: str, as_of: dt.datetime) -> FeatureOutcome:
        return FeatureOutcome(partition=partition, as_of=as_of)

    def refusal(self, db: Database, outcome: FeatureOutcome) -> None:
        return None  # a feature partition only needs its source, which may legitimately be empty

    def window_start(self, as_of: dt.datetime) -> dt.datetime:
        return self._values(as_of)["window_start"]

    def prepare(self, db: Database, analytics: Database, outcomes: list[FeatureOutcome]) -> None:
        """Register the version (a conflict refuses the whole run) and explain the first partition's $match."""
        d = self.pipeline
        self.report.newly_registered = register(db, d, project=self.project)
        first = substitute(d.pipeline, self._values(outcomes[0].as_of))
        self.report.first_match_index, self.report.first_match_plan = explain_first_match(
            source_database(self.sources, self.source), self.source.collection, first)

    def aggregations(self, db: Database, outcome: FeatureOutcome) -> list[Aggregation]:
        d = self.pipeline
        stages = substitute(d.pipeline, self._values(outcome.as_of))
        problems = expansion_problems(stages)
        if problems:
            raise OutputBoundExceeded(f"{d.name} at {outcome.partition}: " + "; ".join(problems))
        return [Aggregation(
            collection=self.source.collection,
            database=source_database(self.sources, self.source).name,
            stages=stages + write_stages(d, entity=self.entity, as_of=outcome.as_of, run_id=outcome.run_id,
                                         database=db.name),
        )]

    def verify(self, db: Database, outcome: FeatureOutcome, *, max_time_ms: int) -> None:
        outcome.contracts = evaluate_contracts(db, self.pipeline, entity=self.entity, as_of=outcome.as_of,
                                               run_id=outcome.run_id, max_time_ms=max_time_ms)
        outcome.documents_written = outcome.contracts.documents
        over = self.pipeline.bounds.exceeded(documents=outcome.contracts.documents,
                                             written_bytes=outcome.contracts.bytes)
        if over:
            raise OutputBoundExceeded(over)
        if outcome.contracts.problems:
            raise ContractViolation("contract violated: " + "; ".join(outcome.contracts.problems))

    def marker_fields(self, outcome: FeatureOutcome) -> dict:
        return {}

    def summary(self, outcome: FeatureOutcome) -> str:
        return (f"{self.pipeline.name} {outcome.partition}: {outcome.documents_written} documents published "
                f"(run {outcome.run_id})")


def run_feature_pipeline(
    *,
    db: Database,
    analytics: Database,
    sources: Database,
    project: ProjectConfig,
    definition: FeatureDefinition,
    partitions: list[tuple[str, dt.datetime]],
    dagster_run_id: str | None,
    max_time_ms: int,
    log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
    dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None,
) -> ExecutionReport:
    """Compute and publish each (partition key, as_of) in turn; one failing partition does not stop the rest.

    `db` is the project's namespace on the write connection, `analytics` the same database
    on the connection for heavy aggregations, `sources` the platform database on that
    connection (the default database of sources). Raises only when nothing may run at all (a
    version conflict in `feature_pipelines`) or when interrupted; per-partition failures
    are in the report's outcomes and in `pipeline_runs`.
    """
    report = ExecutionReport(definition=definition)
    job = FeatureJob(project, definition, report, sources)
    result = run_partitions(job, db=db, analytics=analytics, partitions=partitions, dagster_run_id=dagster_run_id,
                            max_time_ms=max_time_ms, log=log, dagster_run_finished=dagster_run_finished)
    report.outcomes, report.abandoned_runs = result.outcomes, result.abandoned_runs
    return report
