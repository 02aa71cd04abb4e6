"""The safety walk over a feature pipeline's stages, before anything runs.

A definition may only read and transform: no JavaScript, no writes of its own (the
platform appends the one `$merge` it allows), no reads from another database, and
every `{$param: NAME}` must name a known parameter. Stages are allow-listed, so a
new server-side stage with side effects is refused until someone reviews it here.
"""

from typing import Any

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
        if isinstance(body, dict):
            target = body.get(FOREIGN_READS[operator])
            if "db" in body or isinstance(target, dict):
                problems.append(f"{here}: reading from another database is not allowed")
            elif target is not None and not isinstance(target, str):
                problems.append(f"{here}: {FOREIGN_READS[operator]} must be a collection name")
            elif isinstance(target, str) and target.startswith("system."):
                problems.append(f"{here}: reading system collection {target!r} is not allowed")
            if "pipeline" in body:
                nested["pipeline"] = body["pipeline"]
                body = {k: v for k, v in body.items() if k != "pipeline"}
    elif operator == "$facet" and isinstance(body, dict):
        nested, body = body, {}
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
        if key in JAVASCRIPT_OPERATORS:
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
