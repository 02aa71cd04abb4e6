"""Regenerates examples/plans.jsonl: a synthetic SaaS account log for a multiclass question, shaped unlike the
demo: which of three plans (basic, plus, premium) will an account subscribe to next?

Text account ids ("acct-7f3a…"), the event time in `at` as ISO 8601 text with a UTC offset, a `kind` per event
(`session`, `pricing_view` with the plan viewed, `invite` with the seats added, `subscribe` with the plan chosen).
Each account has a team size and a taste for one plan: it views that plan's pricing page most, invites more
seats the larger its team, and subscribes to it most of the time. Run: .venv/bin/python examples/make_plans.py
"""

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np

START = dt.date(2024, 5, 1)
DAYS = 90
ACCOUNTS = 240
PLANS = ("basic", "plus", "premium")
OFFSETS = (dt.timezone(dt.timedelta(hours=h)) for h in (-5, 0, 2))


def events(seed: int = 11) -> list[dict]:
    rng = np.random.default_rng(seed)
    zones = list(OFFSETS)
    team = rng.integers(1, 60, size=ACCOUNTS)
    # The plan an account leans to follows its team size, with noise: small teams basic, large ones premium.
    taste = np.clip(np.digitize(team + rng.normal(0, 12, ACCOUNTS), [15, 35]), 0, 2)
    activity = rng.choice([0.15, 0.35, 0.7], size=ACCOUNTS)
    rows = []
    for day in range(DAYS):
        date = START + dt.timedelta(days=day)
        for account in np.flatnonzero(rng.random(ACCOUNTS) < activity):
            ident = "acct-" + hashlib.sha1(f"{seed}-{account}".encode()).hexdigest()[:10]
            zone = zones[account % len(zones)]

            def at(minute: int) -> str:
                local = dt.datetime.combine(date, dt.time(), tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minute)
                return local.astimezone(zone).isoformat()

            minute = int(rng.integers(0, 23 * 60))
            rows.append({"account": ident, "at": at(minute), "kind": "session"})
            if rng.random() < 0.5:
                viewed = taste[account] if rng.random() < 0.6 else int(rng.integers(0, 3))
                rows.append({"account": ident, "at": at(minute + 5), "kind": "pricing_view", "plan": PLANS[viewed]})
            if rng.random() < team[account] / 150:
                rows.append({"account": ident, "at": at(minute + 9), "kind": "invite",
                             "seats": int(rng.integers(1, 4))})
            if rng.random() < 0.08:
                chosen = taste[account] if rng.random() < 0.75 else int(rng.integers(0, 3))
                rows.append({"account": ident, "at": at(minute + 20), "kind": "subscribe", "plan": PLANS[chosen]})
    return rows


def main() -> None:
    path = Path(__file__).with_name("plans.jsonl")
    rows = events()
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} events to {path}")


if __name__ == "__main__":
    main()
