"""`mining-platform import` at storage speed: a flight log of `--rows` rows (bench.datasets.flights) imported by the
streaming importer and by the baseline, the row-dicts importer as of b80bba6 (bench/baselines), into the embedded
MongoDB.

Each importer runs in a fresh interpreter (so its peak memory is its own, the child's VmHWM) against
the same server, into its own empty collection. Goals: the streaming importer at least 10x faster than the
baseline, its peak memory at most 2x the file. The time each importer waits on the server (its insert_many,
bulk_write and create_index calls, timed around pymongo) is shown beside its own time outside the server: what
a faster server (mongod is 20-100x faster than the embedded one) would not take away.

    .venv/bin/python -m bench.imports [--rows 1000000] [--skip-baseline]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.datasets.flights import write
from mining_platform.tools.embedded_mongo import secured_server

REPO = Path(__file__).resolve().parent.parent
SPEED_GOAL, MEMORY_GOAL = 10.0, 2.0

CHILD = """
import json, sys, time
from pathlib import Path
from pymongo import MongoClient
from mining_platform.spec.project import load_project
kind, path, uri, collection = sys.argv[1:5]
if kind == "streaming":
    from mining_platform.sources.importer import import_file
else:
    from bench.baselines.row_dicts_importer import import_file
project = load_project(Path("projects/churn"))
source = project.sources["user_events"].model_copy(update={"collection": collection, "timestamp": "time_hour",
                                                          "demo_of": None})
project = project.model_copy(update={"entity": "tailnum", "demo": None, "sources": {"flights": source}})
from pymongo.collection import Collection
waited = [0.0]
def timed(method):
    def call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            waited[0] += time.perf_counter() - started
    return call
for name in ("insert_many", "bulk_write", "create_index"):
    setattr(Collection, name, timed(getattr(Collection, name)))
db = MongoClient(uri)["bench"]
def rss():
    # The peak of this process's own memory (VmHWM): getrusage's maxrss survives exec, so it would include the
    # bench process this child was forked from.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base = rss()
started = time.perf_counter()
report = import_file(db, project, "flights", Path(path))
print(json.dumps({"seconds": time.perf_counter() - started, "rows": report.rows, "inserted": report.inserted,
                  "server_seconds": waited[0], "peak_mb": rss(), "base_mb": base}))
"""

def child(code: str, *arguments: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *arguments], cwd=REPO, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-baseline", action="store_true", help="only the streaming importer and the floor")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, secured_server(Path(tmp) / "mongo") as uri:
        path = write(Path(tmp) / "flights.csv", args.rows)
        size_mb = path.stat().st_size / 2**20
        results = {"streaming": child(CHILD, "streaming", str(path), uri, "streaming")}
        if not args.skip_baseline:
            results["baseline"] = child(CHILD, "baseline", str(path), uri, "baseline")

    new = results["streaming"]
    print(f"import: a flight log of {args.rows:,} rows, {size_mb:.0f} MB of CSV, into the embedded MongoDB")
    for name, result in results.items():
        outside = result["seconds"] - result["server_seconds"]
        print(f"  {name:9} {result['seconds']:7.1f} s ({result['rows'] / result['seconds']:8,.0f} rows/s): waiting on the "
              f"server {result['server_seconds']:6.1f} s, outside it {outside:6.1f} s; peak {result['peak_mb']:6.0f} MB, {result['peak_mb'] - result['base_mb']:5.0f} "
              f"MB above the interpreter's {result['base_mb']:.0f} MB")
    above = (new["peak_mb"] - new["base_mb"]) / size_mb
    print(f"  peak memory / file: {above:.2f}x above the interpreter, {new['peak_mb'] / size_mb:.2f}x in all "
          f"(goal <= {MEMORY_GOAL:.0f}x)")
    if "baseline" in results:
        old = results["baseline"]
        speedup = old["seconds"] / new["seconds"]
        outside = (old["seconds"] - old["server_seconds"]) / (new["seconds"] - new["server_seconds"])
        server = old["server_seconds"] / new["server_seconds"]
        print(f"  streaming vs baseline: {speedup:.2f}x faster (goal >= {SPEED_GOAL:.0f}x); outside the server "
              f"{outside:.1f}x, waiting on it {server:.1f}x ({new['server_seconds'] / new['seconds']:.0%} of the "
              "streaming import is the server's)")
        print(f"  baseline peak memory {old['peak_mb'] / new['peak_mb']:.1f}x the streaming importer's")


if __name__ == "__main__":
    main()
