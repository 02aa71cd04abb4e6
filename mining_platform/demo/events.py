"""Seeded, realistic behaviour events for the demo: one day at a time.

A fixed population (drawn from the project's seed) of users with different
engagement levels, module tastes, spending and churn propensity. Users sign up
over time, go quiet in the weeks before they churn and then stop for good, so
recent activity predicts the churn label. Each day is drawn from its own seed,
so a day can be regenerated alone and comes out identical.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np

MODULES = (
    "home", "search", "catalog", "product", "cart", "checkout",
    "profile", "settings", "notifications", "messages", "feed", "rewards",
)
PLATFORMS = ("ios", "android", "web")
# Engagement segments: share of users, sessions per day, mean lifetime in days.
SEGMENTS = {
    "power": (0.15, 3.0, 900.0),
    "regular": (0.45, 1.0, 365.0),
    "casual": (0.40, 0.4, 120.0),
}
QUIET_DAYS = 21  # users fade out over this many days before they churn
SECONDS_PER_DAY = 86_400
# Modules that the drift knob pulls clicks towards (a "new feature" launch).
DRIFT_MODULES = np.array([MODULES.index("feed"), MODULES.index("rewards")])


@dataclass(frozen=True)
class Population:
    """Per-user traits; day offsets count from the project's start_date."""

    user_ids: np.ndarray
    signup_day: np.ndarray
    churn_day: np.ndarray
    session_rate: np.ndarray
    clicks_per_session: np.ndarray
    purchase_prob: np.ndarray
    spend_log_mean: np.ndarray
    preferred_hour: np.ndarray
    platform: np.ndarray
    module_prefs: np.ndarray  # (users, modules), rows sum to 1


def make_population(users: int, seed: int) -> Population:
    rng = np.random.default_rng([seed, 0])
    shares, rates, lifetimes = (np.array(v) for v in zip(*SEGMENTS.values()))
    segment = rng.choice(len(shares), size=users, p=shares)
    # 60% were already users before the first day; the rest join over ~6 months.
    existing = rng.random(users) < 0.6
    signup_day = np.where(
        existing, rng.integers(-120, 0, size=users), rng.integers(0, 180, size=users)
    )
    lifetime = rng.exponential(lifetimes[segment])
    engagement = rng.lognormal(0.0, 0.35, size=users)
    return Population(
        user_ids=np.array([f"u{i:07d}" for i in range(users)]),
        signup_day=signup_day,
        churn_day=signup_day + np.ceil(lifetime).astype(int) + 1,
        session_rate=rates[segment] * engagement,
        clicks_per_session=np.clip(rng.normal(3.0, 1.0, size=users) * engagement, 0.5, 12.0),
        purchase_prob=np.clip(rng.beta(1.2, 18.0, size=users) * engagement, 0.0, 0.9),
        spend_log_mean=rng.normal(3.0, 0.6, size=users),
        preferred_hour=rng.normal(19.0, 3.5, size=users) % 24,
        platform=rng.choice(len(PLATFORMS), size=users, p=[0.45, 0.4, 0.15]),
        module_prefs=rng.dirichlet(np.full(len(MODULES), 0.6), size=users),
    )


def _pick_modules(rng: np.random.Generator, prefs: np.ndarray) -> np.ndarray:
    """One module index per row of `prefs`, drawn from that row's distribution."""
    cumulative = prefs.cumsum(axis=1)
    draws = rng.random(len(prefs))[:, None] * cumulative[:, -1:]
    return (draws > cumulative).sum(axis=1)


def generate_day(
    population: Population,
    *,
    start_date: dt.date,
    day: dt.date,
    seed: int,
    drift: float = 0.0,
    entity_field: str = "user_id",
) -> list[dict]:
    """Every event of `day` as MongoDB documents, sorted by time, with stable `_id`s.

    `drift` (0 = none, 1 = strong) shifts that day's behaviour: fewer and later
    sessions, more clicks pulled towards new modules, more and larger purchases.
    """
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be between 0 and 1, got {drift}")
    offset = (day - start_date).days
    rng = np.random.default_rng([seed, 1, day.toordinal()])
    p = population

    active = (p.signup_day <= offset) & (offset < p.churn_day)
    fading = np.clip((p.churn_day - offset) / QUIET_DAYS, 0.15, 1.0)
    weekend = 0.8 if day.weekday() >= 5 else 1.0
    rate = np.where(active, p.session_rate * fading * weekend * (1.0 - 0.5 * drift), 0.0)
    sessions_per_user = rng.poisson(rate)

    # One row per session.
    s_user = np.repeat(np.arange(len(rate)), sessions_per_user)
    s_index = np.concatenate([np.arange(n) for n in sessions_per_user if n]) if len(s_user) else s_user
    hour = (p.preferred_hour[s_user] + 6.0 * drift + rng.normal(0.0, 2.5, len(s_user))) % 24
    s_start = np.round(hour * 3600.0, 3)
    s_clicks = rng.poisson(p.clicks_per_session[s_user] * fading[s_user] * (1.0 + 0.8 * drift))
    s_purchase = rng.random(len(s_user)) < np.clip(p.purchase_prob[s_user] * (1.0 + drift), 0.0, 0.95)

    # One row per click: module from the user's taste, pulled towards new modules by drift.
    c_session = np.repeat(np.arange(len(s_user)), s_clicks)
    prefs = p.module_prefs[s_user[c_session]] * (1.0 - 0.7 * drift)
    prefs[:, DRIFT_MODULES] += 0.35 * drift
    c_module = _pick_modules(rng, prefs)
    gaps = rng.exponential(40.0, len(c_session)) + 1.0
    # Click times: session start plus the running sum of gaps within each session.
    running = np.cumsum(gaps)
    c_first = np.r_[0, np.cumsum(s_clicks)[:-1]][c_session]  # first click of each click's session
    c_time = s_start[c_session] + running - (running[c_first] - gaps[c_first])

    session_end = s_start.copy()
    np.maximum.at(session_end, c_session, c_time)
    amounts = np.round(
        rng.lognormal(p.spend_log_mean[s_user] + 0.5 * drift, 0.5) * (1.0 + drift), 2
    )
    p_time = session_end + rng.exponential(30.0, len(s_user)) + 1.0

    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    user_ids = p.user_ids
    session_ids = [f"{user_ids[u]}-{day:%Y%m%d}-{k}" for u, k in zip(s_user, s_index)]
    rows: list[tuple[float, str, str, int, dict]] = []
    for s, (u, start) in enumerate(zip(s_user, s_start)):
        rows.append((start, "app_launch", s, u, {"platform": PLATFORMS[p.platform[u]]}))
        if s_purchase[s]:
            rows.append((p_time[s], "purchase", s, u, {"amount": float(amounts[s]), "currency": "EUR"}))
    for s, t, m in zip(c_session, c_time, c_module):
        rows.append((t, "click", s, s_user[s], {"module_id": MODULES[m]}))

    # Millisecond precision: what BSON dates store, so a reread is identical. Events
    # that would spill past midnight belong to no day: a day is exactly [00:00, 24:00).
    timed = [(int(round(r[0] * 1000)), *r[1:]) for r in rows]
    in_day = sorted(
        (r for r in timed if r[0] < SECONDS_PER_DAY * 1000), key=lambda r: (r[0], user_ids[r[3]], r[1])
    )
    events = []
    for seq, (millis, event_type, s, u, payload) in enumerate(in_day):
        events.append(
            {
                "_id": f"{day:%Y%m%d}-{seq:07d}",
                entity_field: str(user_ids[u]),
                "timestamp": midnight + dt.timedelta(milliseconds=millis),
                "event_type": event_type,
                "session_id": session_ids[s],
                "payload": payload,
            }
        )
    return events
