"""The aggregations of windowed feature sets: a range of source days into daily tiles (partial aggregates per
entity), and a window partition combined from the committed tiles of its days (see `features.windowed`)."""

import datetime as dt

from mining_platform.spec.parameters import substitute
from mining_platform.spec.windowed import WindowAggregation, WindowedDefinition
from mining_platform.store import markers

DAY = dt.timedelta(days=1)


MS_PER_DAY = 86_400_000


def _only(agg: WindowAggregation, value, otherwise=None):
    """`value` for the events the aggregation's `where` keeps, `otherwise` for the rest."""
    return value if agg.where is None else {"$cond": [agg.where, value, otherwise]}


def partial_keys(name: str, agg: WindowAggregation) -> dict[str, str]:
    """Where an aggregation's partials live in a main tile: the event count and first/last event time are
    shared by the aggregations without `where`; one with `where` has its own."""
    own = agg.where is not None
    return {"count": f"c_{name}" if own else "c", "last": f"last_{name}" if own else "last",
            "first": f"first_{name}" if own else "first"}


def _partials(definition: WindowedDefinition) -> dict:
    """The `$group` accumulators of one day's tile, per entity."""
    group: dict = {"c": {"$sum": 1}}
    for name, agg in definition.aggregations.items():
        keys = partial_keys(name, agg)
        value = f"${agg.field}" if agg.field else None
        number = {"$isNumber": value} if value else None
        kept_number = number if agg.where is None else {"$and": [agg.where, number]}
        if agg.op in ("count", "active_days"):
            group[keys["count"]] = {"$sum": _only(agg, 1, 0)}
        elif agg.op == "days_since_last":
            group[keys["last"]] = {"$max": _only(agg, "$__t")}
        elif agg.op == "days_since_first":
            group[keys["first"]] = {"$min": _only(agg, "$__t")}
        elif agg.op == "sum":
            group[f"s_{name}"] = {"$sum": _only(agg, value, 0)}
        elif agg.op == "mean":
            group[f"s_{name}"] = {"$sum": _only(agg, value, 0)}
            group[f"n_{name}"] = {"$sum": {"$cond": [kept_number, 1, 0]}}
        elif agg.op == "min":
            group[f"mn_{name}"] = {"$min": {"$cond": [kept_number, value, None]}}
        elif agg.op == "max":
            group[f"mx_{name}"] = {"$max": {"$cond": [kept_number, value, None]}}
        elif agg.op == "count_by":
            group[f"v_{name}"] = {"$push": _only(agg, {"$ifNull": [value, None]})}
    return group


def _counted(values: str) -> dict:
    """An array of values -> [{value, count}] of its non-null values (an expression over one entity's day)."""
    return {"$map": {
        "input": {"$filter": {"input": {"$setUnion": [values]}, "cond": {"$ne": ["$$this", None]}}},
        "as": "v",
        "in": {"value": "$$v", "count": {"$size": {"$filter": {"input": values, "cond": {"$eq": ["$$this", "$$v"]}}}}},
    }}


# A tile partition holds, per entity, one main tile (`cb` "") with the partial aggregates, and per count_by
# aggregation one row per value seen that day (`cb` the aggregation's name, the value in `v`, its count in `n`):
# windows then combine values with plain $group accumulators instead of array expressions. The rows of one
# entity's day are numbered by `part` (0 the main tile), so the unique key the `$merge` writes on,
# (as_of, run_id, entity, part), holds scalars whatever the values are (a value may be a document or an array;
# MongoDB's $merge refuses arrays in its `on` fields). TILE_FORMAT is recorded on each tile marker; a window
# accepts only tiles of this format.
TILE_FORMAT = 3


PART = "part"


MAIN = ""


def tile_stages(definition: WindowedDefinition, *, timestamp: str, entity: str, days: list[tuple[dt.datetime, str]],
                database: str) -> list[dict]:
    """Consecutive source days -> each day's tiles per entity in `tiles_<name>` of `database`, in one pass.

    `days`: (the day's start, the run id its tiles are tagged with), consecutive and in order. The events of all
    the days are read once (one index range) and grouped by entity and day; each tile gets its own day, as_of and
    run id, so each day is verified and published on its own afterwards.
    """
    first, last = days[0][0], days[-1][0] + DAY
    window = {timestamp: {"$gte": first, "$lt": last}}
    match = {"$and": [window, definition.filter]} if definition.filter else window
    partials = _partials(definition)
    main = {entity: "$_id.e", "cb": MAIN, **{k: f"${k}" for k in partials if not k.startswith("v_")}}
    rows = [{"$map": {"input": _counted(f"$v_{name}"),
                      "in": {entity: "$_id.e", "cb": name, "v": "$$this.value", "n": "$$this.count"}}}
            for name, agg in definition.aggregations.items() if agg.op == "count_by"]
    one_day = len(days) == 1
    day = {"$literal": first} if one_day else {"$dateTrunc": {"date": "$__t", "unit": "day", "timezone": "UTC"}}
    run_ids = [run_id for _, run_id in days]
    index = {"$toInt": {"$divide": [{"$subtract": ["$day", {"$literal": first}]}, MS_PER_DAY]}}
    return [
        {"$match": match},
        {"$set": {"__t": f"${timestamp}"}},
        {"$group": {"_id": {"e": f"${entity}", "d": day}, **partials}},
        {"$project": {"_id": 0, "day": "$_id.d", "tiles": {"$concatArrays": [[main], *rows]}}},
        {"$unwind": {"path": "$tiles", "includeArrayIndex": PART}},
        {"$replaceWith": {"$mergeObjects": ["$tiles", {PART: f"${PART}", "day": "$day"}]}},
        # One past the bound a day (a count_by over a field with unbounded values): `verify` refuses a day over
        # it, and `verify_range` a pass that reached it (it may have cut another day short).
        {"$limit": (definition.bounds.max_documents + 1) * len(days)},
        {"$set": {
            "as_of": {"$add": ["$day", MS_PER_DAY]},
            "run_id": {"$literal": run_ids[0]} if one_day else {"$arrayElemAt": [{"$literal": run_ids}, index]},
            "pipeline_version": {"$literal": definition.version},
        }},
        markers.merge_stage(definition.tiles_target, entity=entity, database=database, extra=(PART,)),
    ]


def window_stages(definition: WindowedDefinition, *, entity: str, as_of: dt.datetime,
                  tiles: dict[dt.datetime, str]) -> list[dict]:
    """The committed tiles of the window's days -> one document per entity with the declared features, after `post`.

    `tiles`: the as_of of each tile day of the window -> the run id of its committed tiles. With a count_by,
    three $group stages, each over fewer documents than the one before: per (entity, count_by name, value,
    bucket) the day tiles' partials are added up with plain accumulators, where a day's bucket is the shortest
    declared window holding it (the only expression evaluated per tile); per (entity, count_by name, value) each
    window takes the buckets it holds; per entity the count_by values are collected (a count_by value's rows only
    carry `n`, the main tiles everything else). Without one, a single $group per entity (`_per_entity_only`).
    """
    windows = definition.windows
    bucket = {"$switch": {"branches": [{"case": {"$gte": ["$day", {"$literal": as_of - w * DAY}]}, "then": w}
                                       for w in windows[:-1]], "default": windows[-1]}} if len(windows) > 1 \
        else windows[0]
    by_bucket: dict = {"_id": {"e": f"${entity}", "cb": "$cb", "v": "$v", "b": bucket}}
    per_value: dict = {"_id": {"e": "$_id.e", "cb": "$_id.cb", "v": "$_id.v"}}
    per_entity: dict = {"_id": "$_id.e"}
    final: dict = {}
    cells: list[tuple[str, str, str, object, int]] = []  # (output, accumulator, bucket partial, neutral, window)

    def partial(key: str, accumulator: dict) -> str:
        by_bucket[key] = accumulator
        return f"${key}"

    for name, agg in definition.aggregations.items():
        keys = partial_keys(name, agg)
        if agg.op == "count":
            partials = {"": ("$sum", partial(keys["count"], {"$sum": f"${keys['count']}"}), 0)}
        elif agg.op == "active_days":
            day_counts = {"$eq": ["$cb", MAIN]} if agg.where is None else {"$gt": [f"${keys['count']}", 0]}
            partials = {"": ("$sum", partial(f"d_{name}", {"$sum": {"$cond": [day_counts, 1, 0]}}), 0)}
        elif agg.op == "sum":
            partials = {"": ("$sum", partial(f"s_{name}", {"$sum": f"$s_{name}"}), 0)}
        elif agg.op == "mean":
            partials = {"__s": ("$sum", partial(f"s_{name}", {"$sum": f"$s_{name}"}), 0),
                        "__n": ("$sum", partial(f"n_{name}", {"$sum": f"$n_{name}"}), 0)}
        elif agg.op in ("min", "max"):
            field = f"mn_{name}" if agg.op == "min" else f"mx_{name}"
            accumulator = f"${agg.op}"
            partials = {"": (accumulator, partial(field, {accumulator: f"${field}"}), None)}
        elif agg.op in ("days_since_last", "days_since_first"):
            field, accumulator = (keys["last"], "$max") if agg.op == "days_since_last" else (keys["first"], "$min")
            partials = {"": (accumulator, partial(field, {accumulator: f"${field}"}), None)}
        else:  # count_by: the value's count, on its own rows
            partials = {"": ("$sum", {"$cond": [{"$eq": ["$_id.cb", name]}, partial("n", {"$sum": "$n"}), 0]}, 0)}
        for w in agg.windows_days:
            key, out = f"{name}_{w}", f"{name}_{w}d"
            inside = {"$lte": ["$_id.b", w]}
            for suffix, (accumulator, value, neutral) in partials.items():
                per_value[key + suffix] = {accumulator: {"$cond": [inside, value, neutral]}}
                if agg.op != "count_by":
                    cells.append((key + suffix, accumulator, value[1:], neutral, w))
                if agg.op != "count_by":
                    per_entity[key + suffix] = {accumulator: f"${key}{suffix}"}
            if agg.op in ("count", "active_days", "sum"):
                final[out] = f"${key}"
            elif agg.op == "mean":
                final[out] = {"$cond": [{"$gt": [f"${key}__n", 0]}, {"$divide": [f"${key}__s", f"${key}__n"]}, None]}
            elif agg.op in ("min", "max"):
                final[out] = {"$ifNull": [f"${key}", None]}
            elif agg.op in ("days_since_last", "days_since_first"):
                final[out] = {"$cond": [{"$eq": [{"$ifNull": [f"${key}", None]}, None]}, None,
                                        {"$divide": [{"$subtract": [{"$literal": as_of}, f"${key}"]}, MS_PER_DAY]}]}
            else:
                per_entity[key] = {"$push": {"$cond": [{"$gt": [f"${key}", 0]},
                                                       {"value": "$_id.v", "count": f"${key}"}, None]}}
                final[out] = {"$sortArray": {
                    "input": {"$filter": {"input": f"${key}", "cond": {"$ne": ["$$this", None]}}},
                    "sortBy": {"count": -1, "value": 1},
                }}
    # The tile days' as_of leads the (as_of, run_id, entity, part) index, so the read is an index range, not a scan;
    # a run id belongs to one day, so the run ids pick exactly the committed tiles of each day.
    match = ({"as_of": {"$gte": min(tiles), "$lte": max(tiles)}, "run_id": {"$in": list(tiles.values())}} if tiles
             else {"as_of": {"$in": []}})  # a window wholly before the project's first day: no tiles, no entity
    values = {"as_of": as_of, **definition.parameters}
    if any(agg.op == "count_by" for agg in definition.aggregations.values()):
        groups = [by_bucket, per_value, per_entity]
    else:
        groups = [_per_entity_only(by_bucket, cells, entity=entity, as_of=as_of, longest=windows[-1])]
    return [
        {"$match": match},
        *({"$group": group} for group in groups),
        {"$project": {"_id": 1, **final}},
        *substitute(definition.post, values),
    ]


def _per_entity_only(by_bucket: dict, cells: list, *, entity: str, as_of: dt.datetime, longest: int) -> dict:
    """Without count_by every tile is a main tile, so one $group per entity does what the three do: each window's
    output takes the tiles of its days directly (the read holds the longest window's days only, so its outputs
    take every tile, and only the shorter windows evaluate a condition per tile). Same accumulators, same
    neutral values: the same numbers and types as the bucketed path."""
    group: dict = {"_id": f"${entity}"}
    for output, accumulator, partial, neutral, w in cells:
        [per_tile] = by_bucket[partial].values()  # what the bucket added up from each tile
        if w < longest:
            per_tile = {"$cond": [{"$gte": ["$day", {"$literal": as_of - w * DAY}]}, per_tile, neutral]}
        group[output] = {accumulator: per_tile}
    return group


def window_days_needed(definition: WindowedDefinition, as_of: dt.datetime, first_day: dt.date) -> list[dt.date]:
    """The source days whose tiles window partition as_of reads: its longest window, from the project's first day."""
    last = (as_of - DAY).date()
    days = [last - dt.timedelta(days=k) for k in range(definition.window_days)]
    return sorted(d for d in days if d >= first_day)


def day_as_of(day: dt.date) -> dt.datetime:
    """The as_of of a day's partition: the end of the day (UTC)."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) + DAY
