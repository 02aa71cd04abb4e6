"""The jobs sensors launch: a day's drift report, retraining (samples → model → gate → deployment), a redeploy."""

import dagster as dg

from mining_platform.project import ProjectConfig
from mining_platform.training.samples import SampleSpec


def retrain_job_name(project: ProjectConfig) -> str:
    return f"{project.name}_retrain_job"


def deploy_job_name(project: ProjectConfig) -> str:
    return f"{project.name}_deploy_job"


def drift_report_job_name(project: ProjectConfig) -> str:
    return f"{project.name}_drift_report_job"


def keys(project: ProjectConfig) -> dict[str, dg.AssetKey]:
    p = project.name
    return {
        "raw": dg.AssetKey([p, "raw", project.events]),
        "samples": dg.AssetKey([p, "samples"]),
        "model": dg.AssetKey([p, "model"]),
        "deployment": dg.AssetKey([p, "deployment"]),
        "drift_report": dg.AssetKey([p, "drift_report"]),
    }


def feature_keys(spec: SampleSpec) -> list[dg.AssetKey]:
    """`<p>/features/<set>` for every feature set the project's samples join."""
    return [dg.AssetKey([spec.project.name, "features", d.name]) for d in spec.definitions]


def build_jobs(project: ProjectConfig) -> list:
    k = keys(project)
    return [
        dg.define_asset_job(
            retrain_job_name(project),
            selection=dg.AssetSelection.assets(k["samples"], k["model"], k["deployment"]),
            description="Retrain and redeploy: the sample partitions whose labels matured since the last build (a "
            "partition range; none when nothing matured), a model trained on every committed sample partition, its "
            "blocking gate, and the deployment of the new version when the gate passes. Launched by "
            f"{project.name}_drift_sensor with the drifted features in the run's tags.",
        ),
        dg.define_asset_job(
            deploy_job_name(project),
            selection=dg.AssetSelection.assets(k["deployment"]),
            description="Point the endpoint at a registered version (run config `version`); launched by "
            f"{project.name}_champion_sensor when the champion alias moves outside Dagster.",
        ),
        dg.define_asset_job(
            drift_report_job_name(project),
            selection=dg.AssetSelection.assets(k["drift_report"]),
            description=f"One day's drift report; launched by {project.name}_drift_sensor for the newest committed "
            "feature partition.",
        ),
    ]
