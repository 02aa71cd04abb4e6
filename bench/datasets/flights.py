"""A flight log shaped like the public nycflights13 one (336,776 departures of about 4,000 aircraft in 2013): the
same 19 columns and types, aircraft flying a few times a day, delays with a long tail, written as CSV.

Deterministic for a seed; `--rows` beyond a year's worth continue into the following years.

    .venv/bin/python -m bench.datasets.flights OUT.csv [--rows 336776] [--aircraft 4043] [--seed 13]
"""

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as csv

YEAR_ROWS = 336_776
CARRIERS = ["UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E", "WN", "VX", "FL", "AS", "F9", "YV", "HA", "OO"]
ORIGINS = ["EWR", "JFK", "LGA"]
DESTS = ["ATL", "ORD", "LAX", "BOS", "MCO", "CLT", "SFO", "FLL", "MIA", "DCA", "DTW", "DFW", "RDU", "TPA", "DEN",
         "IAH", "MSP", "PBI", "BNA", "LAS", "SJU", "IAD", "BUF", "PIT", "CLE", "CVG", "MDW", "STL", "PHX", "SEA"]


def flights(rows: int = YEAR_ROWS, *, aircraft: int = 4043, seed: int = 13, start: dt.date = dt.date(2013, 1, 1),
            days: int = 365) -> pa.Table:
    """`rows` departures over `days` days per year's worth of rows, sorted by scheduled time."""
    rng = np.random.default_rng(seed)
    span = max(days * rows // YEAR_ROWS, 1)
    day = np.sort(rng.integers(0, span, rows))
    sched = rng.integers(5 * 60, 23 * 60, rows)  # minutes after midnight, local
    delay = np.round(rng.gamma(0.6, 25.0, rows) - 8).astype(np.int64)
    dep = (sched + delay) % (24 * 60)
    air = rng.integers(25, 600, rows)
    # Aircraft fly unevenly: a few hundred busy ones, a long tail of occasional ones.
    tail = np.minimum(rng.zipf(1.3, rows) - 1, aircraft - 1)
    tail = (tail * 7919 + rng.integers(0, 3, rows)) % aircraft
    dates = np.datetime64(start.isoformat()) + day.astype("timedelta64[D]")
    hour_utc = dates.astype("datetime64[m]") + (sched // 60 * 60 + 300).astype("timedelta64[m]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    missing = rng.random(rows) < 0.025  # cancelled: no times, no delays
    def with_missing(values):
        return pa.array(values, mask=missing)

    return pa.table({
        "year": years, "month": months, "day": dom,
        "dep_time": with_missing(dep // 60 * 100 + dep % 60), "sched_dep_time": sched // 60 * 100 + sched % 60,
        "dep_delay": with_missing(delay), "arr_time": with_missing((dep + air + 20) % 1440 // 60 * 100 + (dep + air) % 60),
        "sched_arr_time": (sched + air + 20) % 1440 // 60 * 100 + (sched + air) % 60,
        "arr_delay": with_missing(delay + rng.integers(-25, 25, rows)),
        "carrier": pa.array(np.array(CARRIERS)[rng.integers(0, len(CARRIERS), rows)]),
        "flight": rng.integers(1, 6000, rows),
        "tailnum": pa.array(np.char.add("N", np.char.zfill(tail.astype(str), 5))),
        "origin": pa.array(np.array(ORIGINS)[rng.integers(0, 3, rows)]),
        "dest": pa.array(np.array(DESTS)[rng.integers(0, len(DESTS), rows)]),
        "air_time": with_missing(air), "distance": air * 8 + rng.integers(0, 60, rows),
        "hour": sched // 60, "minute": sched % 60,
        "time_hour": pa.array(hour_utc.astype("datetime64[s]")).cast(pa.timestamp("s", tz="UTC")),
    })


def write(path: Path, rows: int = YEAR_ROWS, **options) -> Path:
    csv.write_csv(flights(rows, **options), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=YEAR_ROWS)
    parser.add_argument("--aircraft", type=int, default=4043)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    write(args.out, args.rows, aircraft=args.aircraft, seed=args.seed)
    print(f"wrote {args.rows:,} departures to {args.out} ({args.out.stat().st_size / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
