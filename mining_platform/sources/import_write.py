"""The second pass of an import: each row's `_id` (its content digest and occurrence), and the write, all or
nothing: through a staging collection renamed onto a new (or replaced) collection, or inserted into one that
holds events and removed again on a failure."""

import contextlib
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError, PyMongoError

from mining_platform.sources import bson_rows
from mining_platform.sources.import_file import EventFile, ImportFailed
from mining_platform.sources.import_rows import Checked, Progress, RowEncoding

DUPLICATE_KEY = 11000


STAGING_PREFIX = "mining_import_"  # a collection of the source's database, removed when the import ends


def row_ids(digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's digest as hex text and its occurrence among identical rows before it (0, 1, …). Empties
    `digests` (its bytes are joined once); the working arrays are 32-bit where a row number fits."""
    joined = b"".join(digests)
    digests.clear()
    pairs = np.frombuffer(joined, dtype=">u8").reshape(-1, 2)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    ranked = pairs[order]
    starts = np.ones(len(ranked), dtype=bool)
    starts[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
    del ranked
    position = np.arange(len(order), dtype=np.int32)
    first = np.where(starts, position, np.int32(0))
    np.maximum.accumulate(first, out=first)
    position -= first
    occurrence = np.empty(len(order), dtype=np.int32)
    occurrence[order] = position
    return pairs, occurrence


def id_array(pairs: np.ndarray, occurrence: np.ndarray) -> pa.Array:
    hexed = pairs.astype(">u8").tobytes().hex().encode()
    digest = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(pairs), [None, pa.py_buffer(hexed)])
    repeat = bson_rows.numbers(occurrence.astype(np.int64), pa.int64(), valid=occurrence > 0).cast(pa.string())
    dash, empty = bson_rows.scalar(b"-", pa.string()), bson_rows.scalar(b"", pa.string())
    suffix = pc.fill_null(pc.binary_join_element_wise(dash, repeat, empty), empty)
    return pc.binary_join_element_wise(digest.cast(pa.string()), suffix, empty)


def write_rows(events, file: EventFile, rows: RowEncoding, pairs, occurrence, checked: Checked, path: Path,
               say: Progress, *, empty: bool, covered: dict | None) -> tuple[int, int]:
    """Write the checked rows so that a failure leaves `events` exactly as it was; returns (rows that were new, rows
    of the covered days removed).

    Into an empty (or absent) collection: every batch goes to a staging collection of the same database, which is
    renamed onto the target in one step once complete (a crash leaves only the staging collection, removed by the
    next import). Into a collection that holds events: the rows not there yet are inserted, and a failure removes
    every row this import inserted (their ids are known: a row's id is its content) before reporting it. Replacing
    the `covered` days: the staging collection gets the events outside those days (copied inside the server), the
    file's rows and the collection's indexes, and is renamed over it in one step."""
    database = events.database
    for stale in database.list_collection_names(filter={"name": {"$regex": f"^{STAGING_PREFIX}"}}):
        if stale.startswith(f"{STAGING_PREFIX}{events.name}."):
            database.drop_collection(stale)  # left by an import that crashed
    staged = empty or covered is not None
    target = database[f"{STAGING_PREFIX}{events.name}.{uuid.uuid4().hex[:12]}"] if staged else events
    total = checked.rows
    written: list[str] = []
    inserted = offset = kept = replaced = 0
    try:
        if covered is not None:
            before = events.count_documents({})
            replaced = events.count_documents(covered)
            events.aggregate([{"$match": {"$nor": [covered]}}, {"$out": target.name}])
            say(lambda _: f"kept {before - replaced:,} rows outside the replaced days", done=True)
        for number, batch in enumerate(file.batches()):
            if number in checked.kept_rows:
                batch = batch.filter(pa.array(checked.kept_rows[number]))
            elements, _, _ = rows.elements(batch)
            ids = id_array(pairs[offset:offset + batch.num_rows], occurrence[offset:offset + batch.num_rows])
            present = [elements[name] for name in rows.order if name in elements]
            docs = [RawBSONDocument(doc) for doc in bson_rows.documents(ids, present).to_pylist()]
            offset += batch.num_rows
            new = insert_batch(target, docs, path)
            if covered is not None:  # rows the replaced days already held, unchanged
                kept += events.count_documents({"_id": {"$in": new}, **covered})
            inserted += len(new)
            if not staged:
                written.extend(new)
            say(lambda seconds: f"wrote {offset:,} of {total:,} rows ({offset / total:.0%}), "
                                f"{offset / max(seconds, 1e-9):,.0f} rows/s")
        if covered is not None:
            for index in events.list_indexes():  # published with the indexes it had, never unindexed
                if index["name"] != "_id_":
                    options = {k: v for k, v in index.items() if k not in ("key", "v", "ns")}
                    target.create_index(list(index["key"].items()), **options)
            if events.count_documents({}) != before:
                raise _arrived(path, events)
            target.rename(events.name, dropTarget=True)
        elif empty:
            if events.name in database.list_collection_names(filter={"name": events.name}):
                if events.find_one({}, {"_id": 1}) is not None:
                    raise _arrived(path, events)
                events.drop()
            target.rename(events.name)
    except BaseException as exc:
        if staged:
            with contextlib.suppress(PyMongoError):
                target.drop()
        else:
            for i in range(0, len(written), 10_000):
                with contextlib.suppress(PyMongoError):
                    events.delete_many({"_id": {"$in": written[i:i + 10_000]}})
        if isinstance(exc, PyMongoError):
            raise ImportFailed(f"{path}: MongoDB failed during the write ({exc}); nothing of this file was "
                               "kept, the collection is as it was") from None
        raise
    return inserted - kept, replaced - kept


def _arrived(path: Path, events) -> ImportFailed:
    """The refusal when the collection changed while the file was staged: publishing would lose those events."""
    return ImportFailed(f"{path}: {events.database.name}.{events.name} received events while the file was imported; "
                        "import again (nothing was written)")


def raw_id(doc: RawBSONDocument) -> str:
    """The `_id` of a document import built (a string, its first element), read from the bytes: `doc["_id"]` would
    decode the whole document into a dict and keep it (a batch's documents would take several times their size)."""
    raw = doc.raw
    if raw[4] == 0x02 and raw[5:9] == b"_id\x00":
        size = int.from_bytes(raw[9:13], "little")
        return raw[13:13 + size - 1].decode()
    return doc["_id"]


def insert_batch(events, docs: list[RawBSONDocument], path: Path) -> list[str]:
    """Insert a batch; rows already there (same _id) are skipped. Returns the ids that were new."""
    if not docs:
        return []
    ids = [raw_id(doc) for doc in docs]
    try:
        events.insert_many(docs, ordered=False)
        return ids
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [error for error in errors if error.get("code") != DUPLICATE_KEY]
        if other:
            raise ImportFailed(f"{path}: MongoDB refused a row ({other[0].get('errmsg')}); nothing of this file was "
                               "kept, the collection is as it was") from None
        there = {error["index"] for error in errors}
        return [doc_id for i, doc_id in enumerate(ids) if i not in there]
