"""Every asset key of a project, built from the spec's names (`mining_platform.spec.names`)."""

from dataclasses import dataclass

import dagster as dg

from mining_platform.spec import ProjectSpec, names


def raw_key(project: str, source: str) -> dg.AssetKey:
    return dg.AssetKey(list(names.raw_asset(project, source)))


def feature_key(project: str, feature_set: str) -> dg.AssetKey:
    return dg.AssetKey(list(names.feature_asset(project, feature_set)))


def asset_key(project: str, asset: str) -> dg.AssetKey:
    """`samples`, `model`, `deployment`, `drift_report`."""
    return dg.AssetKey(list(names.project_asset(project, asset)))


@dataclass(frozen=True)
class ProjectKeys:
    raw: dg.AssetKey  # the project's event source
    features: dict[str, dg.AssetKey]  # feature set -> key, in definition order
    samples: dg.AssetKey
    model: dg.AssetKey
    deployment: dg.AssetKey
    drift_report: dg.AssetKey

    @property
    def feature_keys(self) -> list[dg.AssetKey]:
        return list(self.features.values())


def project_keys(spec: ProjectSpec) -> ProjectKeys:
    p = spec.name
    return ProjectKeys(
        raw=raw_key(p, spec.project.events),
        features={d.name: feature_key(p, d.name) for d in spec.definitions},
        samples=asset_key(p, "samples"),
        model=asset_key(p, "model"),
        deployment=asset_key(p, "deployment"),
        drift_report=asset_key(p, "drift_report"),
    )
