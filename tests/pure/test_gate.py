"""The gate reads each metric in its direction."""


import pytest

from mining_platform.spec.model_config import GateConfig


@pytest.mark.parametrize(("gate", "value", "champion", "passed", "reason"), [
    ({"metric": "rmse", "max": 3.0, "max_regression": 0.2}, 2.5, None, True, "no champion to compare with"),
    ({"metric": "rmse", "max": 3.0, "max_regression": 0.2}, 3.5, None, False, "RMSE 3.5000 is above the ceiling max 3.0"),
    ({"metric": "rmse", "max": 3.0, "max_regression": 0.2}, 2.5, 2.2, False, "RMSE 2.5000 loses 0.3000 to champion v1"),
    ({"metric": "rmse", "max": 3.0, "max_regression": 0.2}, 2.3, 2.2, True, "champion v1 scores 2.2000"),
    ({"metric": "r2", "min": 0.1, "max_regression": 0.02}, 0.05, None, False, "R² 0.0500 is below the floor min 0.1"),
    ({"metric": "r2", "min": 0.1, "max_regression": 0.02}, 0.30, 0.35, False, "R² 0.3000 loses 0.0500 to champion v1"),
    ({"metric": "logloss", "max": 0.6, "max_regression": 0.01}, 0.40, 0.395, True, "log loss 0.4000"),
    ({"metric": "auc", "min": 0.7, "max_regression": 0.01}, float("nan"), None, False, "AUC is nan"),
])
def test_the_gate_reads_each_metric_in_its_direction(gate, value, champion, passed, reason):
    from mining_platform.training.gate import ChampionScore, decide

    result = decide(gate=GateConfig.model_validate(gate), value=value, rows=100,
                    champion=ChampionScore("1", champion) if champion is not None else None)
    assert result.passed is passed
    assert reason in result.reason
