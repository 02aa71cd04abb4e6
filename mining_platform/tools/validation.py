"""`mining-platform validate PATH…`: the checks a run makes before writing, without running."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pymongo.database import Database

from mining_platform.sources.observe import SourceProblem, complete_through, ignored_future, shown, watermark
from mining_platform.spec import ProjectSpec
from mining_platform.spec.definition import FEATURES_DIR, FeatureDefinitionError
from mining_platform.spec.feature_files import load_feature_definition, load_feature_files
from mining_platform.spec.label import LABELS_DIR, LabelDefinitionError, label_path, load_label_definition
from mining_platform.spec.names import project_database
from mining_platform.spec.project import PROJECT_FILE, ProjectConfigError, load_project, project_names
from mining_platform.store.versions import conflict


class ValidationFailed(ValueError):
    """The first file with problems; the message names it and lists all of its problems."""


@dataclass(frozen=True)
class Target:
    """One project to check, and which of its feature files (None: all of them)."""

    project_dir: Path
    feature_files: tuple[Path, ...] | None


def resolve(path: Path) -> list[Target]:
    """Projects root, project folder, features or labels folder, project.yaml or one definition file."""
    if path.is_dir() and (path / PROJECT_FILE).is_file():
        return [Target(path, None)]
    if path.is_dir() and path.name in (FEATURES_DIR, LABELS_DIR) and (path.parent / PROJECT_FILE).is_file():
        return [Target(path.parent, None)]
    if path.is_dir() and project_names(path):
        return [Target(path / name, None) for name in project_names(path)]
    if path.is_file() and path.name == PROJECT_FILE:
        return [Target(path.parent, ())]
    if path.is_file() and path.parent.name == FEATURES_DIR and (path.parent.parent / PROJECT_FILE).is_file():
        return [Target(path.parent.parent, (path,))]
    if path.is_file() and path.parent.name == LABELS_DIR and (path.parent.parent / PROJECT_FILE).is_file():
        return [Target(path.parent.parent, None)]
    raise ValidationFailed(
        f"{path}: not a projects folder, a project, a features or labels folder, {PROJECT_FILE}, a feature "
        f"definition (projects/<p>/{FEATURES_DIR}/<name>.yaml) or a label definition "
        f"(projects/<p>/{LABELS_DIR}/<name>.yaml)"
    )


def validate(
    paths: list[Path], *, registry: Database | None, report: Callable[[str], None] = print
) -> int:
    """Check every file under `paths`; raises ValidationFailed at the first file with problems.

    With a `registry` database, each definition is also compared with what
    `feature_pipelines` holds for its (name, version), and each source of a whole
    project is read: its timestamp field must hold dates. Returns how many files were checked.
    """
    checked = 0
    for target in [t for path in paths for t in resolve(path)]:
        try:
            project = load_project(target.project_dir)
        except ProjectConfigError as exc:
            raise ValidationFailed(str(exc)) from None
        report(f"ok  {target.project_dir / PROJECT_FILE}")
        checked += 1
        try:
            if target.feature_files is None:  # the whole set also shows a feature produced by two files
                loaded = load_feature_files(target.project_dir, project)
                label = load_label_definition(target.project_dir, project)
                # The label must not collide with a feature of the samples.
                ProjectSpec(project=project, definitions=tuple(definition for _, definition in loaded),
                            label_definition=label)
                loaded.append((label_path(target.project_dir, label.name), label))
            else:
                loaded = [(path, load_feature_definition(path, project)) for path in target.feature_files]
        except (FeatureDefinitionError, LabelDefinitionError) as exc:
            raise ValidationFailed(str(exc)) from None
        except ValueError as exc:  # the spec's own rules across files
            raise ValidationFailed(f"{target.project_dir / PROJECT_FILE}: {exc}") from None
        if registry is not None and target.feature_files is None:
            for key, source in project.sources.items():
                try:
                    newest = watermark(registry, source)
                except SourceProblem as exc:
                    raise ValidationFailed(f"{target.project_dir / PROJECT_FILE}: sources.{key}.timestamp: {exc}") from None
                state = ("holds no events yet" if newest is None else
                         f"newest event {newest.isoformat()}, complete through "
                         f"{complete_through(newest, source.lateness_days)}")
                ignored = ignored_future(registry, source)
                if ignored:
                    state += f"; {ignored}"
                report(f"ok  source {key} ({shown(source, registry)}): {state}")
        # The registry of a project's versions lives in the project's namespace.
        namespace = registry.client[project_database(registry.name, project.name)] if registry is not None else None
        for path, definition in loaded:
            problem = namespace is not None and conflict(namespace, definition, project=project.name)
            if problem:
                raise ValidationFailed(str(FeatureDefinitionError(path, [problem])))
            checked += 1
            report(f"ok  {path}  ({definition.name} v{definition.version}, hash {definition.content_hash[:12]})")
    return checked
