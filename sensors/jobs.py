"""The jobs sensors launch: a day's drift report, retraining (samples → model → gate → deployment), a redeploy
(their names: `mining_platform.spec.tags`)."""

import dagster as dg

from assets.keys import project_keys
from mining_platform.spec import ProjectSpec
from mining_platform.spec.tags import deploy_job, drift_report_job, observe_sources_job, performance_job, retrain_job


def build_jobs(spec: ProjectSpec) -> list:
    k, p = project_keys(spec), spec.name
    return [
        dg.define_asset_job(
            observe_sources_job(spec.name),
            selection=dg.AssetSelection.assets(*k.sources.values()),
            description="Observe every day of every source: per-day event counts and newest event times, computed in "
            f"MongoDB. A day whose data version changed makes its feature partitions follow (through "
            f"{p}_automation_sensor). {p}_observe_sources_sensor does the same a few days at a time, without a run.",
        ),
        dg.define_asset_job(
            retrain_job(spec.name),
            selection=dg.AssetSelection.assets(k.samples, k.model, k.deployment),
            description="Retrain and redeploy: the sample partitions whose labels matured since the last build (a "
            "partition range; none when nothing matured), a model trained on every committed sample partition, its "
            "blocking gate, and the deployment of the new version when the gate passes. Launched by "
            f"{p}_drift_sensor with the drifted features in the run's tags.",
        ),
        dg.define_asset_job(
            deploy_job(spec.name),
            selection=dg.AssetSelection.assets(k.deployment),
            description="Point the endpoint at a registered version (run config `version`, `role`, `retire`); "
            f"launched by {p}_champion_sensor when an alias moves outside Dagster, and by {p}_performance_sensor to "
            "promote or retire a challenger on realised evidence.",
        ),
        dg.define_asset_job(
            performance_job(spec.name),
            selection=dg.AssetSelection.assets(k.performance),
            description=f"One day's realised performance; launched by {p}_performance_sensor once the day's "
            "predictions are committed and its label window has elapsed.",
        ),
        dg.define_asset_job(
            drift_report_job(spec.name),
            selection=dg.AssetSelection.assets(k.drift_report),
            description=f"One day's drift report; launched by {p}_drift_sensor for the newest committed "
            "feature partition.",
        ),
    ]
