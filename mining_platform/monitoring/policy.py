"""The performance policy: what the newest matured days of realised performance decide for a project's champion
and challenger (promote, retire, retrain), or why they decide nothing. Pure: the performance sensor gathers the
evidence (each day's `<p>/performance` report) and launches what this returns.

In this order, on the newest `performance.min_days` days about the current champion:

- **promote** the challenger when it beat the champion on every one of those days and their pooled interval is
  clear of zero;
- **retire** the challenger when it lost on every day and the interval is clear of zero on the other side;
- **retrain** when the champion's realised gate metric was past the gate's bound on every one of those days.

Each decision carries its evidence as `mining.performance.*` tags.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import CHALLENGER, CHAMPION
from mining_platform.spec.tags import PERFORMANCE_TAG_PREFIX

if TYPE_CHECKING:  # numpy and scipy: loaded when evidence is pooled, not when the policy is imported
    from mining_platform.tasks.judge.statistics import Interval


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str  # promote, retire, retrain
    version: str  # the version the decision is about (challenger, or the champion for retrain)
    days: list[str]
    reason: str
    tags: dict[str, str]



def _interval(difference: dict) -> "Interval":
    from mining_platform.tasks.judge.statistics import Interval

    def number(key: str, default: float) -> float:
        value = difference.get(key)
        return default if value is None else float(value)

    return Interval(number("estimate", float("nan")), number("low", float("-inf")), number("high", float("inf")),
                    number("variance", float("inf")))


def _worse_than_bound(value: float | None, evidence: dict) -> bool:
    if value is None:
        return False
    return value < evidence["floor"] if evidence["higher_is_better"] else value > evidence["floor"]


def decide(spec: ProjectSpec, evidence: dict[str, dict], *, champion: str | None,
           challenger: str | None) -> Decision | str:
    """The decision the newest `min_days` days of evidence support, or why there is none."""
    from mining_platform.tasks.judge.statistics import pool

    settings = spec.project.performance
    need, confidence = settings.min_days, settings.confidence
    if champion is None:
        return "no champion"
    notes = []
    if challenger is not None:
        paired = [(day, e) for day, e in sorted(evidence.items(), reverse=True)
                  if (e.get(CHAMPION) or {}).get("version") == champion
                  and (e.get(CHALLENGER) or {}).get("version") == challenger and e.get("difference")]
        recent = paired[:need]
        if len(recent) < need:
            notes.append(f"{len(recent)} of {need} matured days compare challenger v{challenger} with champion "
                         f"v{champion}")
        else:
            days = [day for day, _ in recent]
            differences = [_interval(e["difference"]) for _, e in recent]
            pooled = pool(differences, confidence=confidence)
            compared_on = recent[0][1]["compared_on"]
            summary = (f"challenger v{challenger} − champion v{champion} on {compared_on} over {days[-1]}..{days[0]}: "
                       f"{pooled.estimate:+.4f} [{pooled.low:+.4f}, {pooled.high:+.4f}] ({confidence:.0%}); per day "
                       + ", ".join(f"{d.estimate:+.4f}" for d in differences))
            tags = {f"{PERFORMANCE_TAG_PREFIX}compared_on": compared_on,
                    f"{PERFORMANCE_TAG_PREFIX}champion_version": champion,
                    f"{PERFORMANCE_TAG_PREFIX}challenger_version": challenger,
                    f"{PERFORMANCE_TAG_PREFIX}difference": f"{pooled.estimate:.6f}",
                    f"{PERFORMANCE_TAG_PREFIX}interval": f"[{pooled.low:.6f}, {pooled.high:.6f}]",
                    f"{PERFORMANCE_TAG_PREFIX}confidence": f"{confidence}",
                    f"{PERFORMANCE_TAG_PREFIX}days": ",".join(sorted(days))}
            if pooled.low > 0 and all(d.estimate > 0 for d in differences):
                return Decision("promote", challenger, days, f"promote: {summary}",
                                {**tags, f"{PERFORMANCE_TAG_PREFIX}decision": "promote"})
            if pooled.high < 0 and all(d.estimate < 0 for d in differences):
                return Decision("retire", challenger, days, f"retire: {summary}",
                                {**tags, f"{PERFORMANCE_TAG_PREFIX}decision": "retire"})
            notes.append(f"no clear difference: {summary}")
    own = [(day, e) for day, e in sorted(evidence.items(), reverse=True)
           if (e.get(CHAMPION) or {}).get("version") == champion]
    recent = own[:need]
    if len(recent) < need:
        notes.append(f"{len(recent)} of {need} matured days report champion v{champion}")
        return "; ".join(notes)
    metric = recent[0][1]["metric"]
    values = [(day, e[CHAMPION].get("value")) for day, e in recent]
    shown = ", ".join(f"{day} {'undefined' if v is None else f'{v:.4f}'}" for day, v in values)
    bound = f"{'min' if recent[0][1]['higher_is_better'] else 'max'} {recent[0][1]['floor']}"
    if all(_worse_than_bound(v, e) for (_, v), (_, e) in zip(values, recent)):
        days = [day for day, _ in recent]
        return Decision("retrain", champion, days,
                        f"retrain: champion v{champion}'s realised {metric} is past the gate's {bound} on each of the "
                        f"last {need} matured days ({shown})",
                        {f"{PERFORMANCE_TAG_PREFIX}decision": "retrain", f"{PERFORMANCE_TAG_PREFIX}metric": metric,
                         f"{PERFORMANCE_TAG_PREFIX}champion_version": champion,
                         f"{PERFORMANCE_TAG_PREFIX}values": shown[:250],
                         f"{PERFORMANCE_TAG_PREFIX}days": ",".join(sorted(days))})
    notes.append(f"champion v{champion}'s realised {metric} is within the gate's {bound} ({shown})")
    return "; ".join(notes)
