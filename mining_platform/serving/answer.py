"""A prediction request's answer once its feature matrix is known: who answers which rows (the champion, a canary
challenger), what the prediction log records, the shadow challenger scored after the answer has been sent, and
the response body (the champion's task says what a prediction is)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from starlette.background import BackgroundTask

from mining_platform.serving.metrics import EndpointMetrics
from mining_platform.serving.online_features import FeatureStoreUnavailable
from mining_platform.serving.payload import BadRequest, RowsRequest
from mining_platform.serving.prediction_log import PredictionLog, Scoring, log_documents
from mining_platform.serving.served_model import ServedModel
from mining_platform.serving.split import canary_answers, canary_rows, champion_answers
from mining_platform.serving.state import ProjectState
from mining_platform.spec.names import CHALLENGER
from mining_platform.spec.project import ChallengerConfig

log = logging.getLogger("mining_platform.serving")


class Answerer:
    def __init__(self, prediction_log: Callable[[], PredictionLog], metrics: EndpointMetrics):
        self._log = prediction_log  # created by the endpoint's lifespan
        self._metrics = metrics

    async def challenger_matrix(self, state: ProjectState, challenger: ServedModel, model: ServedModel,
                                X: np.ndarray, parsed) -> np.ndarray | None:
        """The request as the challenger's feature matrix; None when it cannot score this request (rows for a model
        with other features, or an entity lookup it refuses): then the champion answers alone."""
        if challenger.features == model.features:
            return X
        if isinstance(parsed, RowsRequest):
            return None
        try:
            return (await state.online.lookup(challenger, parsed.entities)).X
        except (BadRequest, FeatureStoreUnavailable) as exc:
            log.debug(f"{state.spec.name}: challenger {challenger.uri} not scored: {exc}")
            return None

    async def answer(self, state: ProjectState, model: ServedModel, challenger: ServedModel | None,
                     setting: ChallengerConfig, X: np.ndarray, parsed, *, key: str | None,
                     newest) -> tuple[dict, BackgroundTask | None, list[tuple[str, str]]]:
        """The response body, the work to do after sending it (a shadow challenger's scores), and the (role,
        version) of every model that answered rows. `model`, `challenger` and `setting` are what the request took
        when it began, whatever a reload does meanwhile."""
        prediction_log, project = self._log(), state.spec.name
        background = None
        sampled = prediction_log.sampled()
        clock = time.perf_counter()
        if challenger is not None and setting.mode == "canary":
            routed = canary_rows(project, challenger.version, setting.traffic, rows=X.shape[0], key=key,
                                 entities=None if isinstance(parsed, RowsRequest) else parsed.entities)
            X_challenger = await self.challenger_matrix(state, challenger, model, X, parsed) if any(routed) else None
            answer = canary_answers(model, challenger, X, X_challenger, routed)
        else:
            answer = champion_answers(model, X)
            if challenger is not None and sampled:
                # A shadow's scores exist only in the log: it scores the requests that are logged, after the
                # answer has been sent, so the champion's answers never wait for it.
                background = BackgroundTask(self.shadow_scores, state, challenger, model, X, parsed, answer.scorings,
                                            newest)
                sampled = False  # the task records both
        self._metrics.modelled(project, time.perf_counter() - clock)
        for scoring in answer.scorings:
            self._metrics.scored(project, scoring.role, scoring.model.version, len(scoring.rows), answered=True)
        if sampled:
            prediction_log.record(log_documents(project, parsed, answer.scorings, as_of=newest,
                                                only=prediction_log.cap(len(X))))
        payload = {"model": {"name": model.name, "version": model.version, **model.task.describe()},
                   **model.task.answer(answer.scores)}
        if challenger is not None:
            payload["challenger"] = {"name": challenger.name, "version": challenger.version, "mode": setting.mode}
        if answer.versions is not None:
            payload["versions"] = answer.versions
        return payload, background, [(s.role, s.model.version) for s in answer.scorings]

    async def shadow_scores(self, state: ProjectState, challenger: ServedModel, model: ServedModel, X: np.ndarray,
                            parsed, scorings: list[Scoring], newest) -> None:
        X_challenger = await self.challenger_matrix(state, challenger, model, X, parsed)
        if X_challenger is not None:
            scorings = [*scorings, Scoring(challenger, CHALLENGER, X_challenger, challenger.predict(X_challenger),
                                           range(len(X_challenger)), answered=False)]
            self._metrics.scored(state.spec.name, CHALLENGER, challenger.version, len(X_challenger), answered=False)
        prediction_log = self._log()
        prediction_log.record(log_documents(state.spec.name, parsed, scorings, as_of=newest,
                                            only=prediction_log.cap(len(X))))
