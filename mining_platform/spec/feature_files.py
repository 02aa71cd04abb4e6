"""A project's feature definition files: `features/*.yaml`, each loaded as its kind says (pipeline or windowed)."""

from pathlib import Path

from pydantic import (
    ValidationError,
)

from mining_platform.spec.definition import (
    FEATURES_DIR,
    FeatureDefinition,
    FeatureDefinitionError,
    _semantic_problems,
    partition_expansion_problems,
)
from mining_platform.spec.parameters import parameter_values
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.strict import UnreadableFile, describe_validation_error, read_mapping
from mining_platform.spec.windowed import load_windowed_definition

KINDS = ("pipeline", "windowed")


def load_feature_definition(path: Path, project: ProjectConfig) -> FeatureDefinition:
    """Read and validate one definition (either kind); raises FeatureDefinitionError listing all its problems."""
    try:
        raw = read_mapping(path)
    except UnreadableFile as exc:
        raise FeatureDefinitionError(path, [str(exc)]) from None
    kind = raw.get("kind", "pipeline")
    if kind not in KINDS:
        raise FeatureDefinitionError(path, [f"kind: {kind!r} is not a kind of feature definition ({', '.join(KINDS)})"])
    if kind == "windowed":
        return load_windowed_definition(raw, path, project)
    problems = _semantic_problems(raw, path, project)
    try:
        definition = FeatureDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = describe_validation_error(exc) + problems
    if problems:
        raise FeatureDefinitionError(path, problems)
    problems = partition_expansion_problems(definition.pipeline, lambda as_of: parameter_values(
        as_of=as_of, window_days=definition.window_days, declared=definition.parameters), project)
    if problems:
        raise FeatureDefinitionError(path, problems)
    return definition


def feature_files(project_dir: Path) -> list[Path]:
    features_dir = project_dir / FEATURES_DIR
    return sorted([*features_dir.glob("*.yaml"), *features_dir.glob("*.yml")])


def load_feature_files(project_dir: Path, project: ProjectConfig) -> list[tuple[Path, FeatureDefinition]]:
    """Every definition of a project with its file, sorted; the first invalid file raises.

    Two sets may not produce the same feature: training joins them side by side.
    """
    loaded, owner_of = [], {}
    for path in feature_files(project_dir):
        definition = load_feature_definition(path, project)
        clashes = [f"features.{f}: also produced by {owner_of[f].name}" for f in definition.features if f in owner_of]
        if clashes:
            raise FeatureDefinitionError(path, clashes)
        owner_of.update({f: path for f in definition.features})
        loaded.append((path, definition))
    return loaded


def load_feature_definitions(project_dir: Path, project: ProjectConfig) -> list[FeatureDefinition]:
    """Every definition of a project, sorted by name; see `load_feature_files`."""
    return [definition for _, definition in load_feature_files(project_dir, project)]
