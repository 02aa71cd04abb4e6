"""How a request is split between the champion and a canary challenger: which rows the challenger answers, and
the scores, the scorings to log and the version of each answer. Pure (the models' `predict` is), so the split is
tested apart from HTTP; the shadow mode needs no split (the champion answers every row, the challenger is scored
afterwards for the log only).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mining_platform.serving.prediction_log import Scoring
from mining_platform.serving.served_model import ServedModel
from mining_platform.spec.names import CHALLENGER, CHAMPION
from mining_platform.spec.routing import routes_to_challenger


def canary_rows(project: str, version: str, traffic: float, *, entities: Sequence | None, rows: int,
                key: str | None, draw: Callable[[], float] = random.random) -> list[bool]:
    """Per row, whether the canary answers it: an entity request by each entity (sticky), a row request as one
    (sticky by its request key, else a draw of `traffic`)."""
    if entities is not None:
        return [routes_to_challenger(project, e, version, traffic) for e in entities]
    side = routes_to_challenger(project, key, version, traffic) if key is not None else draw() < traffic
    return [side] * rows


@dataclass
class Answer:
    scores: np.ndarray
    scorings: list[Scoring]  # what each model scored, for the prediction log
    versions: list[str] | None  # the version behind each answer (None: the champion answered every row)


def champion_answers(model: ServedModel, X: np.ndarray) -> Answer:
    scores = model.predict(X)
    return Answer(scores, [Scoring(model, CHAMPION, X, scores, range(len(X)), answered=True)], None)


def canary_answers(model: ServedModel, challenger: ServedModel, X: np.ndarray, X_challenger: np.ndarray | None,
                   routed: list[bool]) -> Answer:
    """The answer when a canary runs: each model scores the rows routed to it (the challenger on its own feature
    matrix); without a challenger matrix (it cannot score this request), or when the two answer different tasks
    (the project changed its task), the champion answers every row."""
    n = len(X)
    if X_challenger is None or challenger.task != model.task:
        routed = [False] * n
    to_challenger = sum(routed)
    if to_challenger in (0, n):  # one side answers the whole request: no split (the common case)
        answering, role, matrix = (challenger, CHALLENGER, X_challenger) if to_challenger else (model, CHAMPION, X)
        scores = answering.predict(matrix)
        return Answer(scores, [Scoring(answering, role, matrix, scores, range(n), answered=True)],
                      [answering.version] * n)
    mask = np.array(routed)
    mine, theirs = np.flatnonzero(~mask), np.flatnonzero(mask)
    mine_scores, their_scores = model.predict(X[mine]), challenger.predict(X_challenger[theirs])
    scores = np.empty((n, *mine_scores.shape[1:]))  # one number per row, or one per class
    scores[mine], scores[theirs] = mine_scores, their_scores
    return Answer(scores, [Scoring(model, CHAMPION, X[mine], scores[mine], mine, answered=True),
                           Scoring(challenger, CHALLENGER, X_challenger[theirs], scores[theirs], theirs, answered=True)],
                  [challenger.version if r else model.version for r in routed])
