"""A loaded project: its project file, every feature definition and its label definition, validated together.

This is the one object the rest of the platform is built from: the Dagster code
location, the endpoint, `mining-platform validate`, training and monitoring all
take a `ProjectSpec`.
"""

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

from mining_platform.spec import names
from mining_platform.spec.definition import FeatureDefinition, FeatureType
from mining_platform.spec.feature_files import load_feature_definitions
from mining_platform.spec.label import LabelDefinition, load_label_definition
from mining_platform.spec.project import ProjectConfig, load_project
from mining_platform.spec.source_config import SourceConfig
from mining_platform.tasks import Task, task_named


@dataclass(frozen=True)
class ProjectSpec:
    """A project, its feature sets (sorted by name) and its label; the label may not collide with what a sample row holds."""

    project: ProjectConfig
    definitions: tuple[FeatureDefinition, ...]
    label_definition: LabelDefinition

    def __post_init__(self) -> None:
        label = self.label_definition.name
        for definition in self.definitions:
            reserved = sorted(names.SAMPLE_FIELDS & definition.features.keys())
            if reserved:
                raise ValueError(f"features/{definition.name}.yaml: feature names {reserved} are reserved in samples")
        clash = [d.name for d in self.definitions if label in d.features]
        if clash or label in names.RESERVED_FEATURE_FIELDS | names.SAMPLE_FIELDS or label == self.project.entity:
            where = f"a feature of {', '.join(clash)}" if clash else "a reserved field"
            raise ValueError(f"project {self.project.name}: label {label!r} is {where}; rename one of them")
        unknown = [f"{kind} {d.name}: {d.source}" for kind, d in (*(("features", d) for d in self.definitions),
                                                                  ("label", self.label_definition))
                   if d.source not in self.project.sources]
        if unknown:
            raise ValueError(f"project {self.project.name}: unknown sources ({'; '.join(unknown)})")

    @property
    def name(self) -> str:
        return self.project.name

    @property
    def entity(self) -> str:
        return self.project.entity

    @property
    def task(self) -> str:
        """The name of the project's task (`model.task`)."""
        return self.project.model.task

    @functools.cached_property
    def task_type(self) -> Task:
        """What the project's model answers: its labels, its scores, how it is judged (`mining_platform.tasks`).
        Made once per spec (a multiclass task checks its classes when made)."""
        return task_named(self.project.model.task, **self.label_definition.task_parameters())

    @property
    def label(self) -> str:
        """The label's name: its column in the samples."""
        return self.label_definition.name

    @property
    def horizon(self) -> dt.timedelta:
        return dt.timedelta(days=self.label_definition.horizon_days)

    def source(self, key: str) -> SourceConfig:
        return self.project.sources[key]

    @property
    def label_source(self) -> SourceConfig:
        return self.project.sources[self.label_definition.source]

    def label_window(self, as_of: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """[as_of, as_of + horizon): the events a sample row at as_of is labelled from."""
        return as_of, as_of + self.horizon

    @property
    def feature_columns(self) -> list[str]:
        """Every feature of every set, in set order: the columns of a sample row."""
        return [feature for d in self.definitions for feature in d.features]

    def owner_of(self) -> dict[str, FeatureDefinition]:
        """Feature name -> the definition that produces it."""
        return {feature: d for d in self.definitions for feature in d.features}

    def feature_type(self, feature: str) -> FeatureType:
        return self.owner_of()[feature].features[feature].type

    def boolean_features(self) -> set[str]:
        return {name for d in self.definitions for name, c in d.features.items() if c.type is FeatureType.bool}

    @property
    def samples_collection(self) -> str:
        return names.samples_collection(self.name)

    def source_path(self, key: str) -> tuple[str, ...]:
        return names.source_asset(self.name, key)

    def feature_path(self, feature_set: str) -> tuple[str, ...]:
        return names.feature_asset(self.name, feature_set)

    def asset_path(self, asset: str) -> tuple[str, ...]:
        """`samples`, `model`, `deployment`, `drift_report` of this project."""
        return names.project_asset(self.name, asset)


def load_spec(project_dir: Path) -> ProjectSpec:
    """Read and validate a project folder; every problem is a ValueError that names the file or the project."""
    project = load_project(project_dir)
    return ProjectSpec(project=project, definitions=tuple(load_feature_definitions(project_dir, project)),
                       label_definition=load_label_definition(project_dir, project))
