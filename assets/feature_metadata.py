"""What a feature asset shows in the UI: its run's metadata (partitions, documents, bytes, the first stage's
index use), one check result per feature contract, its column schema and owners."""

import dagster as dg

from mining_platform.features.pipeline import ExecutionReport
from mining_platform.spec.definition import FeatureDefinition


def check_name(feature: str) -> str:
    return f"{feature}_contract"


def owners(owner: str) -> list[str]:
    return [owner if "@" in owner else f"team:{owner}"]


def _partition_table(report: ExecutionReport) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({
                "partition": o.partition,
                "status": "committed" if o.committed else "FAILED",
                "documents": o.documents_written,
                "seconds": o.duration_seconds,
                "bytes_returned": o.bytes_returned,
                "run_id": o.run_id,
                "error": o.error or "",
            })
            for o in report.outcomes
        ],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("partition", "string"), dg.TableColumn("status", "string"),
            dg.TableColumn("documents", "int"), dg.TableColumn("seconds", "float"),
            dg.TableColumn("bytes_returned", "int"), dg.TableColumn("run_id", "string"),
            dg.TableColumn("error", "string"),
        ]),
    )


def run_metadata(report: ExecutionReport, database: str) -> dict:
    definition = report.definition
    return {
        "documents_written": dg.MetadataValue.int(sum(o.documents_written for o in report.outcomes if o.committed)),
        "partitions_committed": dg.MetadataValue.int(sum(o.committed for o in report.outcomes)),
        "duration_seconds": dg.MetadataValue.float(round(sum(o.duration_seconds for o in report.outcomes), 3)),
        "bytes_returned": dg.MetadataValue.int(sum(o.bytes_returned for o in report.outcomes)),
        "pipeline_version": dg.MetadataValue.int(definition.version),
        "pipeline_hash": dg.MetadataValue.text(definition.content_hash),
        "first_match_uses_index": dg.MetadataValue.bool(report.first_match_index is not None),
        "first_match_plan": dg.MetadataValue.text(report.first_match_plan),
        "collection": dg.MetadataValue.text(f"{database}.{definition.target}"),
        "partitions": _partition_table(report),
        "abandoned_runs_failed": dg.MetadataValue.json(report.abandoned_runs),
    }


def check_results(report: ExecutionReport) -> list[dg.AssetCheckResult]:
    """One result per contract, over every partition whose documents were checked."""
    checked = [o for o in report.outcomes if o.contracts is not None]
    if not checked:
        return []
    results = []
    for feature in report.definition.features:
        per_partition = {o.partition: next(c for c in o.contracts.checks if c.feature == feature) for o in checked}
        failing = {key: check.problems for key, check in per_partition.items() if not check.passed}
        documents = sum(c.documents for c in per_partition.values())
        nulls = sum(c.nulls for c in per_partition.values())
        numeric = [v for c in per_partition.values() for v in (c.observed_min, c.observed_max) if isinstance(v, int | float)]
        results.append(dg.AssetCheckResult(
            check_name=check_name(feature),
            passed=not failing,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "partitions_checked": dg.MetadataValue.int(len(per_partition)),
                "documents": dg.MetadataValue.int(documents),
                "null_rate": dg.MetadataValue.float(round(nulls / documents, 6) if documents else 0.0),
                "observed_min": dg.MetadataValue.float(float(min(numeric))) if numeric else dg.MetadataValue.null(),
                "observed_max": dg.MetadataValue.float(float(max(numeric))) if numeric else dg.MetadataValue.null(),
                "violations": dg.MetadataValue.json(failing),
            },
        ))
    return results


def column_schema(definition: FeatureDefinition) -> dg.TableSchema:
    """The features of a definition as the catalog shows them: name, type, and the contract in the description."""
    def described(contract) -> str:
        bounds = ", ".join(part for part in (
            f"min {contract.min}" if contract.min is not None else "",
            f"max {contract.max}" if contract.max is not None else "",
            f"null rate ≤ {contract.max_null_rate}") if part)
        return f"{contract.description + '; ' if contract.description else ''}{bounds} (version {definition.version})"

    return dg.TableSchema(columns=[
        dg.TableColumn(name=name, type=contract.type.value, description=described(contract))
        for name, contract in definition.features.items()
    ])
