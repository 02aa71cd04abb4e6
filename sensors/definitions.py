"""One `Definitions` per project: `dagster dev -m sensors.definitions -a <project>`.

Each project folder under MINING_PROJECTS_DIR is an attribute of this module,
built on first access, so one code location never loads (or fails on) another
project's files.
"""

import functools
import warnings

import dagster as dg

from assets.demo import build_demo_asset
from assets.deployment import build_deployment_asset
from assets.drift_report import build_drift_report_asset
from assets.features import build_feature_assets
from assets.model import build_model_asset
from assets.performance import build_performance_asset
from assets.predictions import build_predictions_asset
from assets.samples import build_samples_asset
from assets.sources import build_source_assets
from mining_platform import settings
from mining_platform.spec import ProjectSpec, load_spec
from mining_platform.spec.project import PROJECT_FILE
from mining_platform.spec.tags import sensor_name
from resources import platform_resources
from sensors.alerts import build_alert_sensors
from sensors.champion import build_champion_sensor
from sensors.drift import build_drift_sensor
from sensors.executor import plan_sized_executor
from sensors.jobs import build_jobs
from sensors.observe import build_observe_sensor
from sensors.performance import build_performance_sensor

# The beta APIs the platform uses on purpose (single-run backfills, observable sources, window mappings that start
# before the first partition): their warnings would only clutter every code location's start-up output.
warnings.filterwarnings(
    "ignore", category=dg.BetaWarning,
    message=r"(Parameter `backfill_policy`|Function `observable_source_asset`|"
            r"Parameter `allow_nonexistent_upstream_partitions`)")


def build_definitions(project_name: str) -> dg.Definitions:
    return project_definitions(load_spec(settings.projects_dir() / project_name))


def project_definitions(spec: ProjectSpec) -> dg.Definitions:
    """Every asset, job and sensor of one project, bound to the platform's resources."""
    project = spec.project
    jobs = build_jobs(spec)
    return dg.Definitions(
        assets=[
            *build_source_assets(project),
            *([build_demo_asset(project)] if project.demo else []),
            *build_feature_assets(project, list(spec.definitions)),
            build_samples_asset(spec),
            build_model_asset(spec),
            build_deployment_asset(project),
            build_drift_report_asset(spec),
            build_predictions_asset(spec),
            build_performance_asset(spec),
        ],
        jobs=jobs,
        sensors=[
            build_drift_sensor(spec, jobs),
            build_champion_sensor(project, jobs),
            build_performance_sensor(spec, jobs),
            build_observe_sensor(project),
            *build_alert_sensors(spec),
            # Evaluates the assets' automation conditions (feature days follow source days); on by
            # default so the loop works out of the box. Stop it in the UI (Automation) to pause.
            dg.AutomationConditionSensorDefinition(
                sensor_name(project.name, "automation"), target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
            ),
        ],
        resources=platform_resources(project.name),
        executor=plan_sized_executor,
    )


@functools.cache
def _cached_definitions(project_name: str) -> dg.Definitions:
    return build_definitions(project_name)


def __getattr__(name: str) -> dg.Definitions:
    if name.startswith("__") or not (settings.projects_dir() / name / PROJECT_FILE).is_file():
        raise AttributeError(
            f"module {__name__!r} has no project {name!r} (no {PROJECT_FILE} under {settings.projects_dir() / name})"
        )
    return _cached_definitions(name)
