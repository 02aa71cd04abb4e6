"""`mining-platform new NAME --source C --entity F --timestamp F`: a project that validates and loads.

It writes `projects/<NAME>/project.yaml` (one source, the chosen task and a gate), a
starter feature definition (events, active days and recency over 30 days) and a
starter label (binary: any event in the next 30 days; regression: how many), then
loads the result exactly as the code location would, and appends the project's code
location to workspace.yaml. Nothing is written when a check fails.
"""

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from mining_platform import settings
from mining_platform.spec import load_spec
from mining_platform.spec.names import max_project_name_bytes
from mining_platform.spec.project import PROJECT_FILE, RESERVED_PROJECT_NAMES
from mining_platform.spec.source_config import PROJECT_NAME, SourceConfig
from mining_platform.spec.strict import describe_validation_error

SOURCE_KEY = "events"
WINDOW_DAYS = 30
HORIZON_DAYS = 30


class ScaffoldFailed(ValueError):
    """The project cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class Scaffolded:
    project_dir: Path
    files: list[Path]
    workspace: Path | None


def _project_yaml(name: str, source: SourceConfig, entity: str, start: dt.date, task: str, label: str,
                  end: dt.date | None) -> str:
    gate = ("{metric: auc, min: 0.6, max_regression: 0.01}      # floor, and the AUC it may lose to the champion"
            if task == "binary" else
            "{metric: r2, min: 0.0, max_regression: 0.02}       # better than the mean, and the R² it may lose")
    database = f"\n    database: {source.database}" if source.database else ""
    return f"""# Created by `mining-platform new`; edit freely, then `mining-platform validate projects/{name}`.
name: {name}
entity: {entity}                    # entity key of features, samples and predictions
sources:                           # collections the platform observes and never writes
  {SOURCE_KEY}:
    collection: {source.collection}{database}
    timestamp: {source.timestamp}              # the event-time field (a BSON date)
    lateness_days: 0               # a day is complete once events past its end arrived
start_date: "{start.isoformat()}"        # first daily partition
{_end_line(end)}automation: {{follow_days: 3}}      # automation computes the latest 3 days by itself; backfill older ones
label: {label}                     # labels/{label}.yaml
model:
  name: {name}_xgb                 # MLflow registered model
  task: {task}
  params: {{max_depth: 4, learning_rate: 0.1, n_estimators: 200}}
  gate: {gate}
drift: {{psi_threshold: 0.2, min_drifted_features: 2}}
"""


def _end_line(end: dt.date | None) -> str:
    if end is None:
        return ""
    return (f'end_date: "{end.isoformat()}"          # last daily partition: where the events end (remove it '
            "to follow new days)\n")


def _feature_yaml(feature_set: str, entity: str, timestamp: str) -> str:
    return f"""name: {feature_set}
version: 1
description: >-
  How active each entity was over the {WINDOW_DAYS} days before as_of: events, distinct
  active days, and days since the last event. A starting point: add your own
  fields (amounts, types, channels) in the $group.
owner: data-team
source: {SOURCE_KEY}
window_days: {WINDOW_DAYS}
pipeline:
  - $match:
      {timestamp}: {{$gte: {{$param: window_start}}, $lt: {{$param: as_of}}}}
  - $group:
      _id: "${entity}"
      events_{WINDOW_DAYS}d: {{$sum: 1}}
      days: {{$addToSet: {{$dateTrunc: {{date: "${timestamp}", unit: day}}}}}}
      last_event: {{$max: "${timestamp}"}}
  - $project:
      events_{WINDOW_DAYS}d: 1
      active_days_{WINDOW_DAYS}d: {{$size: "$days"}}
      days_since_last_event:
        $divide: [{{$subtract: [{{$param: as_of}}, "$last_event"]}}, 86400000]
features:
  events_{WINDOW_DAYS}d: {{type: int, min: 1}}
  active_days_{WINDOW_DAYS}d: {{type: int, min: 1, max: {WINDOW_DAYS}}}
  days_since_last_event: {{type: float, min: 0, max: {WINDOW_DAYS}}}
"""


def _label_yaml(label: str, task: str, entity: str, timestamp: str) -> str:
    if task == "binary":
        what, value, default = (f"1 when the entity has any event in the {HORIZON_DAYS} days from as_of, else 0.",
                                "{$max: 1}", "0                         # no event in the window: 0")
    else:
        what, value, default = (f"How many events the entity has in the {HORIZON_DAYS} days from as_of.",
                                "{$sum: 1}", "0                         # no event in the window: 0 events")
    return f"""name: {label}
version: 1
description: {what}
owner: data-team
source: {SOURCE_KEY}
horizon_days: {HORIZON_DAYS}                   # label window [as_of, as_of + {HORIZON_DAYS} days)
pipeline:                          # one document per entity: {{_id: <entity>, value: <label>}}
  - $match:
      {timestamp}: {{$gte: {{$param: as_of}}, $lt: {{$param: horizon_end}}}}
  - $group: {{_id: "${entity}", value: {value}}}
default: {default}
"""


def _workspace_entry(name: str) -> str:
    return f"""  - python_module:
      module_name: sensors.definitions
      attribute: {name}
      location_name: {name}
      working_directory: .
"""


def scaffold(projects_dir: Path, name: str, *, collection: str, entity: str, timestamp: str, start_date: dt.date,
             task: str = "binary", database: str | None = None, workspace: Path | None = None,
             end_date: dt.date | None = None) -> Scaffolded:
    """Write and load a new project; raises ScaffoldFailed, leaving nothing behind, when anything is off."""
    if not re.fullmatch(PROJECT_NAME, name):
        raise ScaffoldFailed(f"project name {name!r}: lowercase letters, digits and _, starting with a letter")
    if name in RESERVED_PROJECT_NAMES:
        raise ScaffoldFailed(f"project name {name!r} is reserved (an attribute of sensors.definitions, which "
                             "code locations are looked up in): choose another")
    limit = max_project_name_bytes(settings.setting("MINING_MONGO_DB"))
    if len(name) > limit:
        raise ScaffoldFailed(f"project name {name!r}: at most {limit} characters with MINING_MONGO_DB "
                             f"{settings.setting('MINING_MONGO_DB')!r} (its databases stay under 64 bytes)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", entity):
        raise ScaffoldFailed(f"--entity {entity!r}: a top-level field name (letters, digits, _)")
    try:
        source = SourceConfig(collection=collection, database=database, timestamp=timestamp)
    except ValidationError as exc:
        raise ScaffoldFailed("; ".join(describe_validation_error(exc))) from None
    if end_date is not None and end_date < start_date:
        raise ScaffoldFailed(f"end date {end_date} is before the start date {start_date}")
    project_dir = projects_dir / name
    if project_dir.exists():
        raise ScaffoldFailed(f"{project_dir} already exists")
    if workspace is not None and workspace.is_file():
        listed = yaml.safe_load(workspace.read_text()) or {}
        if any(entry.get("python_module", {}).get("attribute") == name for entry in listed.get("load_from") or []):
            raise ScaffoldFailed(f"{workspace} already has a code location {name!r}")
    # Feature set and label names are database-wide in the registry: prefixed with the project, two scaffolded
    # projects never collide.
    feature_set = f"{name}_activity"
    label = f"{name}_active_next_30d" if task == "binary" else f"{name}_events_next_30d"
    files = {
        project_dir / PROJECT_FILE: _project_yaml(name, source, entity, start_date, task, label, end_date),
        project_dir / "features" / f"{feature_set}.yaml": _feature_yaml(feature_set, entity, timestamp),
        project_dir / "labels" / f"{label}.yaml": _label_yaml(label, task, entity, timestamp),
    }
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        load_spec(project_dir)
    except ValueError as exc:
        shutil.rmtree(project_dir, ignore_errors=True)
        raise ScaffoldFailed(f"the scaffolded project does not load (please report this): {exc}") from None
    if workspace is not None and workspace.is_file():
        text = workspace.read_text()
        workspace.write_text(text + ("" if text.endswith("\n") else "\n") + _workspace_entry(name))
    return Scaffolded(project_dir=project_dir, files=list(files), workspace=workspace if workspace and workspace.is_file() else None)
