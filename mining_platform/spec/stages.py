"""The safety walk over a feature pipeline's stages, before anything runs.

A definition may only read and transform: no JavaScript, no writes of its own (the
platform appends the one `$merge` it allows), no reads from another database, of a
platform collection or of a `system.*` one (collections to read are written literally,
never through a `$param`), and every `{$param: NAME}` must name a known parameter.
Stages are allow-listed, so a new server-side stage with side effects is refused until
someone reviews it here. Stages that multiply documents are bounded: `$sample` and
`$range` take literal sizes within a limit, `$densify` explicit bounds (checked again
once parameters are substituted, `expansion_problems`); what remains (a Cartesian
`$lookup`, a large `$unwind`) is bounded by the definition's output limits and maxTimeMS.
"""

import datetime as dt
from typing import Any

from mining_platform.spec.names import is_platform_collection

# Read-and-transform stages. Not here on purpose: $out/$merge (writes), $currentOp,
# $listSessions, $collStats, $indexStats, $planCacheStats, $changeStream (server
# introspection, not features), $documents (constant data, not a source).
ALLOWED_STAGES = frozenset({
    "$addFields", "$bucket", "$bucketAuto", "$count", "$densify", "$facet", "$fill",
    "$geoNear", "$graphLookup", "$group", "$limit", "$lookup", "$match", "$project",
    "$redact", "$replaceRoot", "$replaceWith", "$sample", "$set", "$setWindowFields",
    "$skip", "$sort", "$sortByCount", "$unionWith", "$unset", "$unwind",
})
JAVASCRIPT_OPERATORS = frozenset({"$where", "$function", "$accumulator"})
WRITE_STAGES = frozenset({"$out", "$merge"})
# Stages that read another collection, and the key naming it.
FOREIGN_READS = {"$lookup": "from", "$graphLookup": "from", "$unionWith": "coll"}
# Stages and operators that make documents or array elements out of numbers, and their bounds.
MAX_SAMPLE_SIZE = 1_000_000
MAX_RANGE_ELEMENTS = 10_000
MAX_DENSIFY_STEPS = 100_000
DENSIFY_UNIT_MS = {"millisecond": 1, "second": 1_000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000,
                   "week": 7 * 86_400_000}


def pipeline_problems(pipeline: Any, known_parameters: set[str]) -> list[str]:
    """Every safety problem of `pipeline`, each naming its stage; empty when it is safe."""
    problems: list[str] = []
    _walk_pipeline(pipeline, "", known_parameters, problems)
    return problems


def _walk_pipeline(pipeline: Any, where: str, known: set[str], problems: list[str]) -> None:
    if not isinstance(pipeline, list):
        problems.append(f"{where or 'pipeline'}: must be a list of stages, got {type(pipeline).__name__}")
        return
    for number, stage in enumerate(pipeline, start=1):
        if not isinstance(stage, dict) or len(stage) != 1 or not str(next(iter(stage))).startswith("$"):
            shown = list(stage) if isinstance(stage, dict) else type(stage).__name__
            problems.append(f"{where}stage {number}: a stage is a mapping with exactly one $-operator, got {shown}")
            continue
        (operator, body), = stage.items()
        here = f"{where}stage {number} ({operator})"
        if operator in WRITE_STAGES:
            problems.append(
                f"{here}: {operator} is not allowed; the platform appends its own $merge into the "
                "feature collection"
            )
        elif operator in JAVASCRIPT_OPERATORS:
            problems.append(f"{here}: {operator} runs JavaScript and is not allowed")
        elif operator not in ALLOWED_STAGES:
            problems.append(f"{here}: unknown or unsupported stage (allowed: {', '.join(sorted(ALLOWED_STAGES))})")
        else:
            _walk_stage(operator, body, here, known, problems)


def _walk_stage(operator: str, body: Any, here: str, known: set[str], problems: list[str]) -> None:
    nested: dict[str, Any] = {}
    if operator in FOREIGN_READS:
        if operator == "$unionWith" and isinstance(body, str):
            body = {"coll": body}
        if isinstance(body, dict) and "$param" in body:
            problems.append(f"{here}: the collection to read must be written literally, not through a $param")
            return
        if isinstance(body, dict):
            key = FOREIGN_READS[operator]
            target = body.get(key)
            if isinstance(target, dict) and "$param" in target:
                problems.append(f"{here}: {key} must be written literally, not through a $param")
            elif "db" in body or isinstance(target, dict):
                problems.append(f"{here}: reading from another database is not allowed")
            elif target is not None and not isinstance(target, str):
                problems.append(f"{here}: {key} must be a collection name")
            elif isinstance(target, str) and target.startswith("system."):
                problems.append(f"{here}: reading system collection {target!r} is not allowed")
            elif isinstance(target, str) and is_platform_collection(target):
                problems.append(f"{here}: {target!r} is a platform collection (platform records, features_*, "
                                "samples_*, labels_*, tiles_*, predictions_*): a definition reads only sources")
            if "pipeline" in body:
                nested["pipeline"] = body["pipeline"]
                body = {k: v for k, v in body.items() if k != "pipeline"}
    elif operator == "$facet" and isinstance(body, dict):
        nested, body = body, {}
    elif operator == "$sample":
        size = body.get("size") if isinstance(body, dict) else None
        if type(size) is not int or not 0 < size <= MAX_SAMPLE_SIZE:
            problems.append(f"{here}: size must be a literal whole number from 1 to {MAX_SAMPLE_SIZE:,}")
    elif operator == "$densify":
        bounds = body.get("range", {}).get("bounds") if isinstance(body, dict) and isinstance(body.get("range"), dict) else None
        if not (isinstance(bounds, list) and len(bounds) == 2):
            problems.append(f"{here}: range.bounds must be an explicit [lower, upper] pair (\"full\" and "
                            f"\"partition\" are unbounded by the definition); at most {MAX_DENSIFY_STEPS:,} steps")
    _walk_expression(body, here, "", known, problems)
    for name, sub_pipeline in nested.items():
        _walk_pipeline(sub_pipeline, f"{here} > {name} ", known, problems)


def _walk_expression(value: Any, here: str, path: str, known: set[str], problems: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk_expression(item, here, path, known, problems)
        return
    if not isinstance(value, dict):
        return
    if "$param" in value:
        _check_param(value, here, path, known, problems)
        return
    for key, item in value.items():
        at = f"{path}.{key}" if path else str(key)
        if key == "$range" and not _literal_range(item):
            problems.append(f"{here}: $range takes literal whole numbers with at most {MAX_RANGE_ELEMENTS:,} "
                            f"elements (at {at})")
        elif key in JAVASCRIPT_OPERATORS:
            problems.append(f"{here}: {key} runs JavaScript and is not allowed (at {at})")
        elif key in WRITE_STAGES:
            problems.append(f"{here}: {key} is not allowed (at {at})")
        else:
            _walk_expression(item, here, at, known, problems)


def _check_param(value: dict, here: str, path: str, known: set[str], problems: list[str]) -> None:
    name = value["$param"]
    at = f" (at {path})" if path else ""
    if len(value) != 1:
        problems.append(f"{here}: {{$param: ...}} must stand alone, found extra keys {sorted(set(value) - {'$param'})}{at}")
    elif not isinstance(name, str):
        problems.append(f"{here}: $param takes a parameter name, got {name!r}{at}")
    elif name not in known:
        problems.append(f"{here}: unknown $param {name!r}{at} (known: {', '.join(sorted(known))})")


def _literal_range(arguments: Any) -> bool:
    """`$range: [start, end, step?]` with literal integers yielding at most MAX_RANGE_ELEMENTS elements."""
    if not isinstance(arguments, list) or len(arguments) not in (2, 3):
        return False
    if not all(type(a) is int for a in arguments):
        return False
    start, end, *rest = arguments
    step = rest[0] if rest else 1
    return step != 0 and len(range(start, end, step)) <= MAX_RANGE_ELEMENTS


def expansion_problems(stages: list[dict]) -> list[str]:
    """After parameters are substituted: every `$densify` (at any depth) spans at most MAX_DENSIFY_STEPS steps."""
    problems: list[str] = []
    _densify_steps(stages, "", problems)
    return problems


def _densify_steps(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, list):
        for number, item in enumerate(value, start=1):
            _densify_steps(item, f"{where}stage {number} " if not where else where, problems)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key == "$densify" and isinstance(item, dict):
            steps = _steps(item.get("range"))
            if steps is None or steps > MAX_DENSIFY_STEPS:
                shown = "cannot be bounded" if steps is None else f"spans {steps:,} steps"
                problems.append(f"{where}($densify): its range {shown}; at most {MAX_DENSIFY_STEPS:,} steps")
        else:
            _densify_steps(item, where, problems)


def _steps(spec: Any) -> int | None:
    if not isinstance(spec, dict):
        return None
    bounds, step = spec.get("bounds"), spec.get("step")
    if not (isinstance(bounds, list) and len(bounds) == 2) or not isinstance(step, int | float) or step <= 0:
        return None
    low, high = bounds
    if isinstance(low, dt.datetime) and isinstance(high, dt.datetime):
        unit = DENSIFY_UNIT_MS.get(spec.get("unit"))
        if unit is None:  # months and years: count them as days, an overestimate that is still a bound
            unit = DENSIFY_UNIT_MS["day"] if spec.get("unit") in ("month", "quarter", "year") else None
        if unit is None:
            return None
        return int((high - low).total_seconds() * 1000 / (step * unit)) + 1
    if isinstance(low, int | float) and isinstance(high, int | float) and not isinstance(low, bool):
        return int((high - low) / step) + 1
    return None
