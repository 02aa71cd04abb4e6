"""The commit-marker read protocol, as queries: which documents are a partition's published rows.

A partition is readable only through its marker (`feature_partitions`, `sample_partitions`,
`prediction_partitions`): the marker names the run whose documents were published, and a reader
takes exactly that run's documents at that as_of. The sync readers (`store.markers`, training,
monitoring, batch predictions) and the endpoint's async lookup build their queries here, so the
protocol is written once.
"""

import datetime as dt


def marker_id(name: str, as_of: dt.datetime) -> str:
    """The `_id` of a pipeline's marker at one as_of."""
    return f"{name}@{as_of.isoformat()}"


def committed_rows(marker: dict, **also) -> dict:
    """The query for the documents a marker published (its run at its as_of), narrowed by `also`."""
    return {"as_of": marker["as_of"], "run_id": marker["run_id"], **also}


def latest_markers(names: list[str]) -> list[dict]:
    """The aggregation over a markers collection giving, per pipeline name, its newest committed marker
    (`{_id: name, marker: {...}}`)."""
    return [
        {"$match": {"name": {"$in": names}}},
        {"$sort": {"name": 1, "as_of": -1}},
        {"$group": {"_id": "$name", "marker": {"$first": "$$ROOT"}}},
    ]
