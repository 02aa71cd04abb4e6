"""Where a feature day and a sample day of the flight-log year spend their time: every MongoDB command of one
day's run, timed by pymongo's command monitoring (server time plus the loopback), grouped by what it does.

Sets up `bench.year`'s project over `--rows` departures (60,000: about 65 days), backfills tiles and features
for the first 50 days in one run each, samples for 5 days, then profiles one more feature day and sample day.

    .venv/bin/python -m bench.notes.year_profile [--rows 60000]
"""

import argparse
import collections
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from pymongo import monitoring

from bench import year
from bench.datasets import flights
from mining_platform.spec import load_spec
from mining_platform.tools.embedded_mongo import secured_server
from resources import MlflowResource, MongoResource


class Timer(monitoring.CommandListener):
    def __init__(self):
        self.on, self.spent = False, collections.defaultdict(lambda: [0, 0.0])

    def started(self, event):  # noqa: F811 - pymongo's hook names
        pass

    def succeeded(self, event):
        self._done(event)

    def failed(self, event):
        self._done(event)

    def _done(self, event):
        if self.on:
            key = self.keys.pop(event.request_id, event.command_name)
            self.spent[key][0] += 1
            self.spent[key][1] += event.duration_micros / 1e6


class Listener(Timer):
    def __init__(self):
        super().__init__()
        self.keys, self.pipelines = {}, []

    def started(self, event):
        command = event.command
        name = event.command_name
        target = command.get(name)
        shape = ""
        if name == "aggregate":
            stages = command.get("pipeline", [])
            shape = " ".join(next(iter(s)) for s in stages)[:120]
            if self.on and stages and "$merge" in stages[-1]:
                self.pipelines.append((event.database_name, target, stages))
        self.keys[event.request_id] = f"{name:<14} {target!s:<38} {shape}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    args = parser.parse_args()
    listener = Listener()
    monitoring.register(listener)
    with tempfile.TemporaryDirectory() as scratch_dir, secured_server(Path(scratch_dir) / "mongo") as uri:
        scratch = Path(scratch_dir)
        projects, workspace = scratch / "projects", scratch / "workspace.yaml"
        projects.mkdir()
        workspace.write_text("load_from:\n")
        os.environ.update({"MINING_HOME": str(scratch / "home"), "MINING_PROJECTS_DIR": str(projects),
                           "MINING_MONGO_URI": uri, "MINING_MONGO_DB": "mining", "MINING_ADMIN_TOKEN": "x"})
        log = flights.write(scratch / "flights.csv", args.rows)
        year.write_project(projects, workspace)
        year.cli_run(["import", str(log), "--project", year.NAME, "--source", "events", "--set-end-date"])
        spec = load_spec(projects / year.NAME)
        mongo = MongoResource(uri=uri, database="mining")
        runs = year.Runs(spec, {"mongo": mongo, "mlflow": MlflowResource(tracking_uri=f"sqlite:///{scratch}/m.db")})
        start = spec.project.start_date
        day = lambda k: (start + dt.timedelta(days=k)).isoformat()  # noqa: E731
        runs.run("tiles", first=day(0), last=day(51))
        runs.run("features", first=day(0), last=day(49))
        runs.run("samples", first=day(30), last=day(32))
        client = mongo.client()
        for asset, k in (("features", 50), ("samples", 33)):
            listener.pipelines.clear()
            listener.spent.clear()
            listener.on = True
            started = time.perf_counter()
            runs.run(asset, first=day(k))
            wall = time.perf_counter() - started
            listener.on = False
            total = sum(s for _, s in listener.spent.values())
            print(f"{asset} {day(k)}: {wall:.2f} s wall, {total:.2f} s in {sum(n for n, _ in listener.spent.values())}"
                  " MongoDB commands")
            for key, (n, s) in sorted(listener.spent.items(), key=lambda kv: -kv[1][1])[:14]:
                print(f"  {s:6.2f} s  {n:4d}x  {key}")
            # The same aggregations without their $merge: what reading and computing cost, apart from the write.
            for database, collection, stages in listener.pipelines:
                for cut in range(1, len(stages)):
                    if next(iter(stages[cut - 1])) in ("$group", "$unionWith", "$lookup", "$match") or cut == len(stages) - 1:
                        started = time.perf_counter()
                        [counted] = list(client[database][collection].aggregate([*stages[:cut], {"$count": "n"}])) or [{"n": 0}]
                        print(f"    {collection} first {cut} stages (to {next(iter(stages[cut - 1]))}): "
                              f"{time.perf_counter() - started:.2f} s, {counted['n']} documents")


if __name__ == "__main__":
    main()
