"""The promotion gate: an absolute AUC floor, and no regression against the champion on the same rows."""

from dataclasses import dataclass

import numpy as np

from mining_platform.registry.aliases import CHAMPION, alias_version
from mining_platform.registry.client import client
from mining_platform.registry.loading import load_version
from mining_platform.training.booster import evaluate, predict
from mining_platform.training.dataset import Split


@dataclass(frozen=True)
class ChampionScore:
    version: str
    auc: float | None
    problem: str | None = None  # why it could not be scored on these rows


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    auc: float
    min_auc: float
    max_regression: float
    champion: ChampionScore | None

    @property
    def champion_auc(self) -> float | None:
        return self.champion.auc if self.champion else None


def score_champion(
    tracking_uri: str, model_name: str, validation: Split, features: list[str]
) -> ChampionScore | None:
    """The current champion's AUC on the new version's validation rows; None when there is no champion."""
    version = alias_version(client(tracking_uri), model_name, CHAMPION)
    if version is None:
        return None
    try:
        loaded = load_version(tracking_uri, model_name, version)
        missing = [name for name in loaded.features if name not in features]
        if missing:
            return ChampionScore(version, None, f"its features {missing} are not in the new samples")
        columns = [features.index(name) for name in loaded.features]
        scores = predict(loaded.booster, np.ascontiguousarray(validation.X[:, columns]))
    except Exception as exc:  # any failure to score leaves the comparison undone: the gate fails closed
        return ChampionScore(version, None, f"it could not be loaded or scored: {type(exc).__name__}: {exc}")
    return ChampionScore(version, evaluate(validation.y, scores)["auc"])


def decide(*, auc: float, min_auc: float, max_regression: float, champion: ChampionScore | None, rows: int) -> GateResult:
    """Pass only if AUC reaches the floor and loses at most `max_regression` to the champion."""
    problems, facts = [], [f"AUC {auc:.4f} on {rows} validation rows"]
    if auc < min_auc:
        problems.append(f"AUC {auc:.4f} is below the floor min_auc {min_auc}")
    if champion is None:
        facts.append("no champion to compare with")
    elif champion.auc is None:
        problems.append(f"champion v{champion.version} could not be compared: {champion.problem}")
    else:
        facts.append(f"champion v{champion.version} scores {champion.auc:.4f} on the same rows")
        if auc < champion.auc - max_regression:
            problems.append(
                f"AUC {auc:.4f} loses {champion.auc - auc:.4f} to champion v{champion.version} "
                f"({champion.auc:.4f}), more than max_regression {max_regression}"
            )
    reason = "; ".join(problems) if problems else "; ".join(facts) + f"; floor {min_auc}, max_regression {max_regression}"
    return GateResult(passed=not problems, reason=reason, auc=auc, min_auc=min_auc,
                      max_regression=max_regression, champion=champion)
