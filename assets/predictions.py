"""`<p>/predictions`: each committed feature day scored by the champion (and the challenger), published per day."""

import os
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from assets import pools
from assets.instance import dagster_run_finished, partitions_with_as_of
from assets.keys import project_keys
from assets.partitions import daily_partitions
from assets.resilience import failure, failures_classified, permanent, retry_policy, unpublished
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import CHALLENGER, CHAMPION, PREDICTION_MARKERS, predictions_collection
from resources import MlflowResource, MongoResource

if TYPE_CHECKING:  # numpy, XGBoost and MLflow: loaded by the scoring step, not by the code location
    from mining_platform.predictions.batch import PredictionOutcome
    from mining_platform.serving.served_model import ServedModel

# A feature day is scored once its features are committed (any day, a late one included), and again when they
# are recommitted; a new deployment does not rescore the past: a day's list is what was predicted that day.
# Nothing is scored before a version was deployed (the deployment dep is missing until then).
ON_COMMITTED_FEATURES = (
    dg.AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("deployment")).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("when the day's features are committed")


class PredictionsRunConfig(dg.Config):
    max_time_ms: int = Field(default=300_000, ge=1_000, description="Server-side time limit (maxTimeMS) of each "
                             "read of a day's features and of the check of what was written.")


def _partition_table(outcomes: list["PredictionOutcome"]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({
            "partition": o.partition,
            "status": "committed" if o.committed else "REFUSED" if o.run_id is None else "FAILED",
            "entities": o.entities, "documents": o.documents_written,
            "mean_champion": round(o.mean_score.get(CHAMPION, 0.0), 6),
            "mean_challenger": round(o.mean_score.get(CHALLENGER, 0.0), 6),
            "read_seconds": o.read_seconds, "score_seconds": o.score_seconds, "write_seconds": o.write_seconds,
            "run_id": o.run_id or "", "error": o.error or "",
        }) for o in outcomes],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("partition", "string"), dg.TableColumn("status", "string"),
            dg.TableColumn("entities", "int"), dg.TableColumn("documents", "int"),
            dg.TableColumn("mean_champion", "float"), dg.TableColumn("mean_challenger", "float"),
            dg.TableColumn("read_seconds", "float"), dg.TableColumn("score_seconds", "float"),
            dg.TableColumn("write_seconds", "float"), dg.TableColumn("run_id", "string"),
            dg.TableColumn("error", "string"),
        ]),
    )


def served_versions(tracking_uri: str, model_name: str, log) -> dict[str, "ServedModel"]:
    """The champion (required) and the challenger (when one is set and loads), loaded as the endpoint loads them."""
    from mining_platform.serving.served_model import ChampionLoadFailed, RegistryUnavailable, aliased, load_version

    models = {}
    for role in (CHAMPION, CHALLENGER):
        try:
            version = aliased(tracking_uri, model_name, role)
            if version is None:
                if role == CHAMPION:
                    raise permanent(f"{model_name} has no {CHAMPION}: deploy a version first")
                continue
            if role == CHALLENGER and version == models[CHAMPION].version:
                continue
            model = load_version(tracking_uri, model_name, version, alias=role)
        except ChampionLoadFailed as exc:
            if role == CHAMPION:
                raise permanent(f"the {CHAMPION} cannot score: {exc}") from None
            log.warning(f"the {CHALLENGER} is not scored (the champion is): {exc}")
            continue
        except RegistryUnavailable as exc:
            raise failure(str(exc), exc) from None
        # Batch scoring uses every core (the endpoint scores small requests on one thread).
        model.booster.set_param({"nthread": os.cpu_count() or 1})
        models[role] = model
    return models


def build_predictions_asset(spec: ProjectSpec) -> dg.AssetsDefinition:
    project = spec.project
    partitions_def = daily_partitions(project)
    keys = project_keys(spec)
    model_name = project.model.name
    what = spec.task_type.score_meaning

    @dg.asset(
        key=keys.predictions,
        partitions_def=partitions_def,
        deps=[*keys.feature_keys, keys.deployment],
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
        pool=pools.MONGODB,
        automation_condition=ON_COMMITTED_FEATURES,
        group_name="monitoring",
        kinds={"mongodb", "xgboost"},
        description=f"Every `{project.entity}` with committed features at as_of T, scored by `{model_name}@{CHAMPION}` "
        f"(and `@{CHALLENGER}` when one is set): the {what} of `{spec.label}` over the "
        f"{spec.label_definition.horizon_days} days after T. The list a team acts on (e.g. tomorrow's at-risk "
        f"users). Stored in `{predictions_collection(spec.name)}` (entity, as_of, role, "
        f"model, score), published per day through `{PREDICTION_MARKERS}`; versions load as the endpoint loads them.",
        metadata={"collection": predictions_collection(spec.name), "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(project.entity, "id"), dg.TableColumn("as_of", "datetime"),
            dg.TableColumn("role", "string", description="champion or challenger"),
            dg.TableColumn("model", "json", description="{name, version}"),
            dg.TableColumn("score", "float", description=what),
        ])},
    )
    def predictions(context: dg.AssetExecutionContext, config: PredictionsRunConfig, mongo: MongoResource,
                    mlflow: MlflowResource):
        from mining_platform.predictions.batch import score_partitions

        with failures_classified():
            models = served_versions(mlflow.tracking_uri, model_name, context.log)
            outcomes = score_partitions(
                db=mongo.project_db(spec.name), analytics=mongo.analytics_project_db(spec.name), spec=spec,
                models=models, partitions=partitions_with_as_of(context, partitions_def),
                dagster_run_id=context.run.run_id, max_time_ms=config.max_time_ms, log=context.log,
                dagster_run_finished=dagster_run_finished(context.instance))
            committed = [o for o in outcomes if o.committed]
            metadata = {
                "dagster/row_count": dg.MetadataValue.int(sum(o.documents_written for o in committed)),
                "champion_version": dg.MetadataValue.text(models[CHAMPION].version),
                "challenger_version": dg.MetadataValue.text(models[CHALLENGER].version if CHALLENGER in models
                                                            else "none"),
                "entities": dg.MetadataValue.int(sum(o.entities for o in committed)),
                "partitions_committed": dg.MetadataValue.int(len(committed)),
                "read_seconds": dg.MetadataValue.float(round(sum(o.read_seconds for o in outcomes), 3)),
                "score_seconds": dg.MetadataValue.float(round(sum(o.score_seconds for o in outcomes), 3)),
                "write_seconds": dg.MetadataValue.float(round(sum(o.write_seconds for o in outcomes), 3)),
                "partitions": _partition_table(outcomes),
            }
            if all(o.committed for o in outcomes):
                yield dg.MaterializeResult(metadata=metadata)
                return
            yield from unpublished(context, outcomes, what="prediction partitions", keeps="readers keep the previous "
                                   "publication", metadata=metadata, recorded=lambda o: {
                                       "entities": o.entities, "run_id": o.run_id,
                                       "champion_version": models[CHAMPION].version})

    return predictions
