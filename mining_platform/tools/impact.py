"""`mining-platform impact PATH`: what a changed feature or label definition touches, before anything runs.

For each definition under PATH: whether the change needs a version bump (its (name,
version) is registered with other content), is a new version, or changes nothing; the
assets downstream of it; and the registered model versions trained on each version of
it (their `mining.features` / `mining.label` tags), which of them holds `champion` and
which the endpoint serves. A model trained on another version of a feature set than the
one published is refused for entity requests (409) until a model trained on the new
version is deployed: the report says so for the champion.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pymongo.database import Database

from mining_platform.registry.aliases import CHAMPION, GATE_TAG
from mining_platform.registry.client import MlflowClient
from mining_platform.registry.inventory import registered_versions
from mining_platform.spec import names
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.feature_files import load_feature_definition
from mining_platform.spec.label import LabelDefinition, load_label_definition
from mining_platform.spec.project import ProjectConfig, load_project
from mining_platform.spec.tags import FEATURES_TAG, LABEL_TAG
from mining_platform.spec.windowed import WindowedDefinition
from mining_platform.store.versions import conflict
from mining_platform.tools.validation import resolve


@dataclass(frozen=True)
class ModelUse:
    version: str
    trained_on: str  # the definition's version (and hash prefix) the model version was trained on
    aliases: tuple[str, ...]
    gate: str
    served: bool


@dataclass
class Impact:
    path: Path
    project: ProjectConfig
    definition: FeatureDefinition | LabelDefinition
    change: str
    downstream: list[str]
    models: list[ModelUse] | None = None  # None: the registry of models was not asked (offline)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        d = self.definition
        out = [f"{self.path}: {d.registry_name} v{d.version} ({self.project.name}): {self.change}",
               f"  downstream: {', '.join(self.downstream)}"]
        if self.models is None:
            out.append("  models: not looked up (offline)")
        elif not self.models:
            out.append(f"  models: no registered version of {self.project.model.name} uses {d.registry_name}")
        for use in self.models or []:
            marks = [*use.aliases, *(["served"] if use.served else [])]
            out.append(f"  model {self.project.model.name} v{use.version} trained on {d.registry_name} "
                       f"{use.trained_on} (gate {use.gate})" + (f" [{', '.join(marks)}]" if marks else ""))
        out += [f"  {note}" for note in self.notes]
        return out


def _downstream(project: ProjectConfig, definition) -> list[str]:
    p = project.name
    shown = []
    if isinstance(definition, WindowedDefinition):
        shown.append(names.shown(names.tiles_asset(p, definition.name)))
    if isinstance(definition, FeatureDefinition | WindowedDefinition):
        shown.append(names.shown(names.feature_asset(p, definition.name)))
    shown += [names.shown(names.project_asset(p, a)) for a in ("samples", "model", "deployment")]
    if isinstance(definition, FeatureDefinition | WindowedDefinition):
        shown += [names.shown(names.project_asset(p, a)) for a in ("drift_report", "predictions")]
    shown.append(names.shown(names.project_asset(p, "performance")))  # features through predictions; labels directly
    return shown


def _change(namespace: Database | None, definition, project: ProjectConfig) -> str:
    if namespace is None:
        return "not compared with the registry (offline)"
    problem = conflict(namespace, definition, project=project.name)
    if problem:
        return f"NEEDS A VERSION BUMP: {problem}"
    registered = sorted(doc["version"] for doc in namespace[names.FEATURE_PIPELINES].find(
        {"name": definition.registry_name}, {"version": 1}))
    if definition.version in registered:
        return "unchanged (this version is registered with this content)"
    if registered:
        return f"a new version: publishing it re-runs what is downstream (registered: {registered})"
    return "not registered yet: a new definition"


def _trained_on(tags: dict, definition) -> str | None:
    if isinstance(definition, LabelDefinition):
        raw = tags.get(LABEL_TAG)
        used = json.loads(raw) if raw else None
    else:
        raw = tags.get(FEATURES_TAG)
        used = (json.loads(raw) if raw else {}).get(definition.name)
    if not used:
        return None
    return f"v{used.get('version')} ({str(used.get('hash', ''))[:12]})"


def _served_version(endpoint_url: str | None, project: str) -> str | None:
    if not endpoint_url:
        return None
    try:
        response = httpx.get(f"{endpoint_url.rstrip('/')}/v1/{project}/version", timeout=3.0)
    except httpx.HTTPError:
        return None
    return response.json().get("version") if response.status_code == 200 else None


def model_uses(client: MlflowClient, project: ProjectConfig, definition, served: str | None) -> list[ModelUse]:
    """The registered versions of the project's model trained on any version of `definition`, newest first."""
    uses = []
    for version in registered_versions(client, project.model.name):
        trained_on = _trained_on(version.tags, definition)
        if trained_on:
            uses.append(ModelUse(version=version.version, trained_on=trained_on, aliases=version.aliases,
                                 gate=version.tags.get(GATE_TAG, "not evaluated"), served=served == version.version))
    return uses


def assess(path: Path, project: ProjectConfig, definition, *, registry: Database | None, client: MlflowClient | None,
           endpoint_url: str | None) -> Impact:
    namespace = registry.client[names.project_database(registry.name, project.name)] if registry is not None else None
    impact = Impact(path, project, definition, _change(namespace, definition, project), _downstream(project, definition))
    if client is not None:
        impact.models = model_uses(client, project, definition, _served_version(endpoint_url, project.name))
        champion = next((m for m in impact.models if CHAMPION in m.aliases), None)
        current = f"v{definition.version} ({definition.content_hash[:12]})"
        if champion and champion.trained_on != current and isinstance(definition, FeatureDefinition | WindowedDefinition):
            impact.notes.append(
                f"once v{definition.version} is published, the champion (v{champion.version}, trained on "
                f"{champion.trained_on}) answers entity requests with 409 until a model trained on v"
                f"{definition.version} is deployed (`{project.name}_retrain_job`); row requests are unaffected")
    return impact


def definitions_under(path: Path) -> list[tuple[Path, ProjectConfig, object]]:
    """(file, project, definition) for every feature and label definition under `path` (as `validate` resolves it);
    a definition file that does not load raises its DefinitionError."""
    found = []
    for target in resolve(path):
        project = load_project(target.project_dir)
        files = target.feature_files
        whole = files is None
        if whole:
            files = sorted((target.project_dir / "features").glob("*.y*ml"))
        found += [(f, project, load_feature_definition(f, project)) for f in files]
        if whole:
            label = load_label_definition(target.project_dir, project)
            found.append((target.project_dir / "labels" / f"{label.name}.yaml", project, label))
    return found
