"""Regenerates examples/orders.csv: a synthetic order log shaped like real ones, not like the demo.

Integer customer ids, the event time in `ordered_at` as "DD/MM/YYYY HH:MM" text, an
amount and a channel; each customer orders at their own rate (so recent activity
predicts the next weeks). Run: .venv/bin/python examples/make_orders.py
"""

import csv
import datetime as dt
from pathlib import Path

import numpy as np

START = dt.date(2024, 3, 1)
DAYS = 150
CUSTOMERS = 200


def orders(seed: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    rates = rng.choice([0.02, 0.1, 0.3, 0.8], size=CUSTOMERS)
    # Some customers stop ordering at a random day, as real customers leave.
    leave = rng.integers(20, DAYS * 2, size=CUSTOMERS)
    rows = []
    for day in range(DAYS):
        date = START + dt.timedelta(days=day)
        for customer in np.flatnonzero((rng.random(CUSTOMERS) < rates) & (day < leave)):
            minute = int(rng.integers(0, 24 * 60))
            rows.append({"customer": 10_000 + int(customer),
                         "ordered_at": f"{date:%d/%m/%Y} {minute // 60:02d}:{minute % 60:02d}",
                         "amount": round(float(rng.gamma(2.0, 15.0)), 2),
                         "channel": str(rng.choice(["web", "app"]))})
    return rows


def main() -> None:
    path = Path(__file__).with_name("orders.csv")
    rows = orders()
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["customer", "ordered_at", "amount", "channel"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} orders to {path}")


if __name__ == "__main__":
    main()
