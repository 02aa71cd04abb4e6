"""Every asset key of a project, built from the spec's names (`mining_platform.spec.names`)."""

from dataclasses import dataclass

import dagster as dg

from mining_platform.spec import ProjectSpec, names


def source_key(project: str, source: str) -> dg.AssetKey:
    return dg.AssetKey(list(names.source_asset(project, source)))


def demo_key(project: str, source: str) -> dg.AssetKey:
    return dg.AssetKey(list(names.demo_asset(project, source)))


def feature_key(project: str, feature_set: str) -> dg.AssetKey:
    return dg.AssetKey(list(names.feature_asset(project, feature_set)))


def tiles_key(project: str, feature_set: str) -> dg.AssetKey:
    return dg.AssetKey(list(names.tiles_asset(project, feature_set)))


def asset_key(project: str, asset: str) -> dg.AssetKey:
    """`samples`, `model`, `deployment`, `drift_report`, `predictions`, `performance`."""
    return dg.AssetKey(list(names.project_asset(project, asset)))


@dataclass(frozen=True)
class ProjectKeys:
    sources: dict[str, dg.AssetKey]  # source key -> its observed asset
    label_source: dg.AssetKey
    features: dict[str, dg.AssetKey]  # feature set -> key, in definition order
    samples: dg.AssetKey
    model: dg.AssetKey
    deployment: dg.AssetKey
    drift_report: dg.AssetKey
    predictions: dg.AssetKey
    performance: dg.AssetKey

    @property
    def feature_keys(self) -> list[dg.AssetKey]:
        return list(self.features.values())


def project_keys(spec: ProjectSpec) -> ProjectKeys:
    p = spec.name
    return ProjectKeys(
        sources={key: source_key(p, key) for key in spec.project.sources},
        label_source=source_key(p, spec.label_definition.source),
        features={d.name: feature_key(p, d.name) for d in spec.definitions},
        samples=asset_key(p, "samples"),
        model=asset_key(p, "model"),
        deployment=asset_key(p, "deployment"),
        drift_report=asset_key(p, "drift_report"),
        predictions=asset_key(p, "predictions"),
        performance=asset_key(p, "performance"),
    )
