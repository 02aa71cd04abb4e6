"""The promotion gate: an absolute bound on the project's gate metric, and no regression against the
champion on the same validation rows (`model.gate` of project.yaml)."""

from dataclasses import dataclass

import numpy as np

from mining_platform.registry.aliases import CHAMPION, alias_version
from mining_platform.registry.client import client
from mining_platform.registry.loading import load_version
from mining_platform.spec.model_config import GateConfig
from mining_platform.tasks import Task, gate_metric
from mining_platform.tasks.judge import judge_of
from mining_platform.training.booster import predict
from mining_platform.training.dataset import Split


@dataclass(frozen=True)
class ChampionScore:
    version: str
    value: float | None  # the gate metric of the champion on the new version's validation rows
    problem: str | None = None  # why it could not be scored on these rows


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    metric: str
    value: float
    gate: GateConfig
    champion: ChampionScore | None

    @property
    def champion_value(self) -> float | None:
        return self.champion.value if self.champion else None


def score_champion(
    tracking_uri: str, model_name: str, validation: Split, features: list[str], *, task: Task, metric: str
) -> ChampionScore | None:
    """The current champion's gate metric on the new version's validation rows; None when there is no champion."""
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
    return ChampionScore(version, judge_of(task).evaluate(validation.y, scores)[metric])


def decide(*, gate: GateConfig, value: float, champion: ChampionScore | None, rows: int) -> GateResult:
    """Pass only if the metric is within its bound and loses at most `max_regression` to the champion.

    "Loses" is in the metric's direction: less AUC, PR AUC or R², more log loss, RMSE or MAE.
    """
    metric, higher = gate.metric, gate.higher_is_better
    name = gate_metric(metric).title
    problems, facts = [], [f"{name} {value:.4f} on {rows} validation rows"]
    if not np.isfinite(value):
        problems.append(f"{name} is {value}")
    elif higher and value < gate.bound:
        problems.append(f"{name} {value:.4f} is below the floor min {gate.bound}")
    elif not higher and value > gate.bound:
        problems.append(f"{name} {value:.4f} is above the ceiling max {gate.bound}")
    if champion is None:
        facts.append("no champion to compare with")
    elif champion.value is None:
        problems.append(f"champion v{champion.version} could not be compared: {champion.problem}")
    else:
        facts.append(f"champion v{champion.version} scores {champion.value:.4f} on the same rows")
        loss = champion.value - value if higher else value - champion.value
        if loss > gate.max_regression:
            problems.append(
                f"{name} {value:.4f} loses {loss:.4f} to champion v{champion.version} ({champion.value:.4f}), more "
                f"than max_regression {gate.max_regression}"
            )
    bound = f"{'min' if higher else 'max'} {gate.bound}"
    reason = "; ".join(problems) if problems else "; ".join(facts) + f"; {bound}, max_regression {gate.max_regression}"
    return GateResult(passed=not problems, reason=reason, metric=metric, value=value, gate=gate, champion=champion)
