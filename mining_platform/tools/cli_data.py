"""`mining-platform import` (a file into a source) and `new` (a project over a collection)."""

import argparse
import sys

from mining_platform import settings
from mining_platform.tools.cli_access import mongo_database


def import_command(args: argparse.Namespace) -> int:
    import datetime as dt
    import re
    from pathlib import Path

    from mining_platform.sources.importer import ImportFailed, import_file
    from mining_platform.sources.observe import historical_end
    from mining_platform.spec.project import PROJECT_FILE, load_project
    from mining_platform.spec.source_config import PROJECT_NAME

    if not re.fullmatch(PROJECT_NAME, args.project):
        print(f"mining-platform import: --project {args.project!r}: a project name (a folder of "
              f"{settings.projects_dir()}), not a path", file=sys.stderr)
        return 1
    try:
        earliest = dt.datetime.combine(dt.date.fromisoformat(args.earliest), dt.time(), dt.timezone.utc)
    except ValueError:
        print(f"mining-platform import: --earliest {args.earliest!r}: a date, YYYY-MM-DD", file=sys.stderr)
        return 1
    report_path = Path(args.drop_bad_rows) if args.drop_bad_rows else None
    if report_path is not None and (report_path.resolve() == Path(args.file).resolve() or report_path.is_dir()):
        print(f"mining-platform import: --drop-bad-rows {report_path}: a new file for the report, not the input "
              "or a folder", file=sys.stderr)
        return 1
    project_dir = settings.projects_dir() / args.project
    project = load_project(project_dir)
    client, db = mongo_database(args.mongo_timeout)
    try:
        report = import_file(db, project, args.source, Path(args.file), timestamp_format=args.timestamp_format,
                             progress=lambda line: print(line, file=sys.stderr, flush=True),
                             earliest=earliest, drop_bad_rows=report_path is not None,
                             replace_days=args.replace_days)
    except ImportFailed as exc:
        print(f"mining-platform import: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    replaced = (f"; days {report.first_day} to {report.last_day} replaced, {report.removed} rows the file no longer "
                "has removed" if args.replace_days else "")
    print(f"imported {report.rows} rows of {args.file} into {report.target} (source {args.source} of {args.project}): "
          f"{report.inserted} new, {report.already_there} already there{replaced}; events from {report.first_day} to "
          f"{report.last_day} ({report.seconds:.1f} s)")
    if report_path is not None:
        write_dropped(report_path, report.dropped)
        print(f"{len(report.dropped)} rows dropped (--drop-bad-rows), each with its line and reason in {report_path}")
    for note in report.notes:
        print(f"note: {note}")
    if report.last_day is None:
        return 0
    last = dt.datetime.combine(report.last_day, dt.time.max, dt.timezone.utc)
    end = historical_end(last, project.sources[args.source].lateness_days, dt.date.today())
    if project.end_date is None and end is not None:
        line = f'end_date: "{end.isoformat()}"'
        if args.set_end_date:
            append_line(project_dir / PROJECT_FILE, f"{line}        # set by `mining-platform import` (where "
                         f"{Path(args.file).name} ends); remove it to follow new days")
            print(f"set {line} in {project_dir / PROJECT_FILE}: the events end on {report.last_day}, so the daily "
                  "partitions stop there instead of running to today. Reload the code location to see it.")
        else:
            print(f"the events end on {report.last_day}, {(dt.date.today() - report.last_day).days} days ago: for a "
                  f"historical file add `{line}` to {project_dir / PROJECT_FILE} (or import with --set-end-date), "
                  "or its daily partitions run to today, empty after that day")
    elif project.end_date is not None and report.last_day > project.end_date:
        print(f"the events run to {report.last_day}, after end_date {project.end_date}: the days after it are no "
              f"partitions; raise end_date in {project_dir / PROJECT_FILE} to compute them")
    return 0


def write_dropped(path, dropped: list[tuple[str, str]]) -> None:
    """The report of `import --drop-bad-rows`: one CSV row per dropped line (`where,reason`), written whole."""
    import csv
    import os

    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["where", "reason"])  # "line 12" (CSV, JSON lines) or "row 12" (Parquet)
        writer.writerows(dropped)
    os.replace(partial, path)


def append_line(path, line: str) -> None:
    """Add a top-level key to a project file, leaving it as it was when the result does not load."""
    from mining_platform.spec.project import load_project

    before = path.read_text()
    path.write_text(before.rstrip("\n") + "\n" + line + "\n")
    try:
        load_project(path.parent)
    except ValueError:
        path.write_text(before)
        raise


def new_command(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from mining_platform.sources.observe import historical_end
    from mining_platform.tools.scaffold import ScaffoldFailed, scaffold

    start = dt.date.fromisoformat(args.start_date) if args.start_date else None
    end = None if args.end_date in (None, "none") else dt.date.fromisoformat(args.end_date)
    said = None
    if start is None:
        from pymongo import ASCENDING, DESCENDING

        client, db = mongo_database(args.mongo_timeout)
        try:
            events = client[args.database][args.source] if args.database else db[args.source]
            first, newest = (events.find_one({args.timestamp: {"$type": "date"}}, {args.timestamp: 1},
                                             sort=[(args.timestamp, order)]) for order in (ASCENDING, DESCENDING))
        finally:
            client.close()
        if first is None:
            print(f"mining-platform new: {args.source} has no document with a date in {args.timestamp!r}; pass "
                  "--start-date (the first day to build features for), or import the events first", file=sys.stderr)
            return 1
        start = first[args.timestamp].date()
        newest_at = newest[args.timestamp].replace(tzinfo=dt.timezone.utc)
        if args.end_date is None:
            end = historical_end(newest_at, 0, dt.date.today())
            if end is not None:
                said = (f"end_date {end}: the newest event is from {newest_at.date()}, "
                        f"{(dt.date.today() - newest_at.date()).days} days ago, so the partitions stop at its last "
                        "complete day instead of running to today (pass --end-date none to follow new days)")
    workspace = Path(args.workspace)
    try:
        made = scaffold(settings.projects_dir(), args.name, collection=args.source, entity=args.entity,
                        timestamp=args.timestamp, start_date=start, task=args.task, database=args.database,
                        workspace=workspace, end_date=end)
    except ScaffoldFailed as exc:
        print(f"mining-platform new: {exc}", file=sys.stderr)
        return 1
    for path in made.files:
        print(f"wrote {path}")
    if said:
        print(said)
    print(f"added code location {args.name} to {made.workspace}" if made.workspace else
          f"no {workspace}: add the code location yourself (-m sensors.definitions -a {args.name})")
    print(f"next: mining-platform validate {made.project_dir}, then `make dev` and materialise {args.name}/features")
    return 0
