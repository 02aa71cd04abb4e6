"""The canary split as a pure function: which rows a canary answers, and who scored what."""

from dataclasses import dataclass

import numpy as np
import pytest

from mining_platform.serving.split import canary_answers, canary_rows, champion_answers
from mining_platform.spec.names import CHALLENGER, CHAMPION
from mining_platform.spec.routing import routes_to_challenger
from mining_platform.tasks import BINARY, Task

pytestmark = pytest.mark.fast


@dataclass
class Constant:
    """A stand-in for a served model: scores every row with its own constant plus the row's first feature."""

    version: str
    offset: float
    task: Task = BINARY

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0] + self.offset


CHAMP, CANARY = Constant("1", 0.0), Constant("2", 100.0)


def test_entities_are_routed_each_by_a_sticky_hash_and_a_row_request_as_one():
    entities = [f"u{i}" for i in range(2000)]
    routed = canary_rows("churn", "2", 0.25, entities=entities, rows=len(entities), key=None)
    assert routed == [routes_to_challenger("churn", e, "2", 0.25) for e in entities]
    assert routed == canary_rows("churn", "2", 0.25, entities=entities, rows=len(entities), key=None)  # sticky
    assert 0.2 < sum(routed) / len(routed) < 0.3
    keyed = canary_rows("churn", "2", 0.25, entities=None, rows=5, key="order-7")
    assert len(set(keyed)) == 1 and keyed[0] == routes_to_challenger("churn", "order-7", "2", 0.25)
    assert canary_rows("churn", "2", 0.25, entities=None, rows=3, key=None, draw=lambda: 0.1) == [True] * 3
    assert canary_rows("churn", "2", 0.25, entities=None, rows=3, key=None, draw=lambda: 0.9) == [False] * 3


def test_a_split_request_is_scored_by_each_side_on_its_own_rows():
    X = np.arange(5, dtype=float).reshape(5, 1)
    X_canary = X * 10  # the challenger's own feature matrix (other features)
    answer = canary_answers(CHAMP, CANARY, X, X_canary, [False, True, False, True, True])
    assert answer.scores.tolist() == [0.0, 110.0, 2.0, 130.0, 140.0]
    assert answer.versions == ["1", "2", "1", "2", "2"]
    (champion, canary) = answer.scorings
    assert (champion.role, list(champion.rows), champion.scores.tolist()) == (CHAMPION, [0, 2], [0.0, 2.0])
    assert (canary.role, list(canary.rows), canary.X.tolist()) == (CHALLENGER, [1, 3, 4], [[10.0], [30.0], [40.0]])
    assert champion.answered and canary.answered


def test_one_side_answers_a_request_whole_and_without_a_matrix_the_champion_does():
    X = np.ones((3, 1))
    whole = canary_answers(CHAMP, CANARY, X, X, [True] * 3)
    assert whole.scores.tolist() == [101.0] * 3 and whole.versions == ["2"] * 3 and len(whole.scorings) == 1
    refused = canary_answers(CHAMP, CANARY, X, None, [True, False, True])  # the challenger cannot score it
    assert refused.scores.tolist() == [1.0] * 3 and refused.versions == ["1"] * 3
    assert [s.role for s in refused.scorings] == [CHAMPION]


def test_without_a_canary_the_champion_answers_every_row():
    answer = champion_answers(CHAMP, np.array([[2.0], [3.0]]))
    assert answer.scores.tolist() == [2.0, 3.0] and answer.versions is None
    assert [(s.role, list(s.rows)) for s in answer.scorings] == [(CHAMPION, [0, 1])]
