"""A local Arrow copy of committed sample partitions, so a retrain reads only what is new.

A committed sample partition never changes: its rows are written once under a fresh
run id (`$merge` with whenMatched "fail") and only deleted after another run replaced
it. A file named by that run id (and by the columns read) therefore stays exact for
as long as the partition's marker points at the run; files of replaced runs are
removed on the next load. A file whose row count disagrees with the marker is
ignored and rewritten.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import pyarrow as pa


class PartitionCache:
    """Arrow IPC files under `root/<collection>/`, one per (run id, schema)."""

    def __init__(self, root: Path, *, collection: str, schema: pa.Schema):
        self.directory = root / collection
        self.fingerprint = hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()[:16]

    def _path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.{self.fingerprint}.arrow"

    def get(self, marker: dict) -> pa.Table | None:
        path = self._path(marker["run_id"])
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (FileNotFoundError, pa.ArrowInvalid):
            return None
        return table if table.num_rows == marker["documents"] else None

    def put(self, marker: dict, table: pa.Table) -> None:
        """Write atomically (temporary file, then rename): a reader sees the whole file or none."""
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".partial")
        try:
            with os.fdopen(descriptor, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            os.replace(temporary, self._path(marker["run_id"]))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def evict_except(self, live_run_ids: set[str]) -> int:
        """Remove the files of runs no marker points at any more; returns how many."""
        removed = 0
        for path in self.directory.glob("*.arrow"):
            if path.name.split(".", 1)[0] not in live_run_ids:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
