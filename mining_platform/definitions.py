"""One `Definitions` per project: `dagster dev -m mining_platform.definitions -a <project>`.

Each project folder under MINING_PROJECTS_DIR is an attribute of this module,
built on first access, so one code location never loads (or fails on) another
project's files.
"""

import functools

import dagster as dg

from mining_platform import settings
from mining_platform.assets.deployment import build_deployment_asset
from mining_platform.assets.features import build_feature_assets
from mining_platform.assets.model import build_model_asset
from mining_platform.assets.raw_events import build_raw_events_asset
from mining_platform.assets.samples import build_samples_asset
from mining_platform.features.definition import load_feature_definitions
from mining_platform.project import PROJECT_FILE, load_project
from mining_platform.resources import platform_resources
from mining_platform.training.samples import SampleSpec


def build_definitions(project_name: str) -> dg.Definitions:
    project_dir = settings.projects_dir() / project_name
    project = load_project(project_dir)
    features = load_feature_definitions(project_dir, project)
    spec = SampleSpec(project=project, definitions=tuple(features))
    return dg.Definitions(
        assets=[
            build_raw_events_asset(project),
            *build_feature_assets(project, features),
            build_samples_asset(spec),
            build_model_asset(spec),
            build_deployment_asset(project),
        ],
        resources=platform_resources(),
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
