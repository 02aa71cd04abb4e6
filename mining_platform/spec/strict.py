"""What project and feature files share: strict schemas, readable errors, reading a YAML mapping."""

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """Unknown keys are errors and loaded values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UnreadableFile(ValueError):
    """The file is missing, not YAML, or not a mapping; the message says which (without the path)."""


def read_mapping(path: Path) -> dict:
    """The YAML mapping in `path`."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UnreadableFile("file not found") from None
    except yaml.YAMLError as exc:
        raise UnreadableFile(f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UnreadableFile(f"expected a mapping of keys, got {type(raw).__name__}")
    return raw


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, naming the dotted key: unknown, missing or invalid (with the value)."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        elif item["type"] == "missing":
            problems.append(f"{key}: missing required key")
        else:
            problems.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return problems
