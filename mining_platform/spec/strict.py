"""What project and feature files share: strict schemas, readable errors, reading a YAML mapping."""

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """Unknown keys are errors, loaded values never change, and no number is NaN or infinite (`.nan` would
    remove a gate's floor)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class UnreadableFile(ValueError):
    """The file is missing, not YAML, or not a mapping; the message says which (without the path)."""


# Bounds a project, feature or label file must keep, so loading one (in validate, the code location and the
# endpoint's start-up) cannot be tied up: real files are a few KB and a few levels deep.
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (a 1 KB alias bomb expands to gigabytes) and deep nesting."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UnreadableFile(f"line {mark.line + 1}: YAML aliases (*name) are not allowed; write the value out")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise UnreadableFile(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_mapping(path: Path) -> dict:
    """The YAML mapping in `path`: at most MAX_FILE_BYTES of UTF-8, no aliases, at most MAX_DEPTH levels deep."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UnreadableFile(f"the file has {size} bytes; a definition file may have at most {MAX_FILE_BYTES}")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UnreadableFile("file not found") from None
    except IsADirectoryError:
        raise UnreadableFile("a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    loader = _BoundedLoader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise UnreadableFile(f"not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
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
