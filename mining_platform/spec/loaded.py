"""A loaded project: its project file and every feature definition, validated together.

This is the one object the rest of the platform is built from: the Dagster code
location, the endpoint, `mining-platform validate`, training and monitoring all
take a `ProjectSpec`.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from mining_platform.spec import names
from mining_platform.spec.definition import FeatureDefinition, FeatureType, load_feature_definitions
from mining_platform.spec.project import ProjectConfig, load_project


@dataclass(frozen=True)
class ProjectSpec:
    """A project and its feature sets (sorted by name); the label may not collide with what a sample row holds."""

    project: ProjectConfig
    definitions: tuple[FeatureDefinition, ...]

    def __post_init__(self) -> None:
        label = self.project.label.name
        for definition in self.definitions:
            reserved = sorted(names.SAMPLE_FIELDS & definition.features.keys())
            if reserved:
                raise ValueError(f"features/{definition.name}.yaml: feature names {reserved} are reserved in samples")
        clash = [d.name for d in self.definitions if label in d.features]
        if clash or label in names.RESERVED_FEATURE_FIELDS | names.SAMPLE_FIELDS or label == self.project.entity:
            where = f"a feature of {', '.join(clash)}" if clash else "a reserved field"
            raise ValueError(f"project {self.project.name}: label.name {label!r} is {where}; rename one of them")

    @property
    def name(self) -> str:
        return self.project.name

    @property
    def entity(self) -> str:
        return self.project.entity

    @property
    def label(self) -> str:
        return self.project.label.name

    @property
    def horizon(self) -> dt.timedelta:
        return dt.timedelta(days=self.project.label.horizon_days)

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

    def raw_path(self) -> tuple[str, ...]:
        return names.raw_asset(self.name, self.project.events)

    def feature_path(self, feature_set: str) -> tuple[str, ...]:
        return names.feature_asset(self.name, feature_set)

    def asset_path(self, asset: str) -> tuple[str, ...]:
        """`samples`, `model`, `deployment`, `drift_report` of this project."""
        return names.project_asset(self.name, asset)


def load_spec(project_dir: Path) -> ProjectSpec:
    """Read and validate a project folder; every problem is a ValueError that names the file or the project."""
    project = load_project(project_dir)
    return ProjectSpec(project=project, definitions=tuple(load_feature_definitions(project_dir, project)))
