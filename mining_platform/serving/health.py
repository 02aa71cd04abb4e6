"""What `/health` says (liveness, and with the admin token what every project serves and why not), and the
predict token's check."""

from __future__ import annotations

import datetime as dt
import secrets

from mining_platform.serving.payload import BadRequest
from mining_platform.serving.prediction_log import PredictionLog
from mining_platform.serving.replicas import Follower
from mining_platform.serving.state import ProjectState
from mining_platform.spec.names import CHALLENGER, CHAMPION


def health_report(states: dict[str, ProjectState], unavailable: dict[str, str], *, started_at: dt.datetime,
                  admin: bool, prediction_log: PredictionLog | None, follower: Follower | None) -> dict:
    """Liveness and, per project, whether it serves a model. For the admin also what each project serves, its
    status and last reload error, and the prediction log's counters (they name internal addresses and errors, so
    they are not for everyone who can reach the port)."""
    if not admin:
        return {
            "status": "ok",
            "started_at": started_at.isoformat(),
            "projects": {name: {"up": state.model is not None} for name, state in states.items()}
            | {name: {"up": False} for name in unavailable},
        }
    return {
        "status": "ok",
        "started_at": started_at.isoformat(),
        "projects": {
            name: {
                "model": state.model_name,
                "version": state.model.version if state.model else None,
                "status": state.roles[CHAMPION].status,
                "last_reload_error": state.roles[CHAMPION].last_reload_error,
                "challenger": {
                    "version": state.challenger.version if state.challenger else None,
                    "mode": state.setting.mode,
                    "traffic": state.setting.traffic,
                    "status": state.roles[CHALLENGER].status,
                    "last_reload_error": state.roles[CHALLENGER].last_reload_error,
                },
            }
            for name, state in states.items()
        } | {name: {"model": None, "version": None, "status": f"not served: {problem}"}
             for name, problem in unavailable.items()},
        "prediction_log": prediction_log.describe() if prediction_log else None,
        "replica": follower.describe() if follower else None,
    }


def readiness(states: dict[str, ProjectState]) -> tuple[dict, int]:
    """Ready once every project's champion is past loading: served, or settled as none to serve (none deployed,
    or a version that cannot be served). While one is still loading or waiting for MLflow, a replica that would
    answer 503 takes no traffic (the chart's readiness and start-up probes ask this)."""
    waiting = {name: state.roles[CHAMPION].status for name, state in states.items() if not state.roles[CHAMPION].ready}
    return {"ready": not waiting, **({"waiting": waiting} if waiting else {})}, 503 if waiting else 200


def require_predict_token(header: str | None, *, predict_token: str | None, admin_token: str) -> None:
    """With MINING_PREDICT_TOKEN set, `/predict` needs `Authorization: Bearer <it>` (the admin token passes too)."""
    if predict_token is None:
        return
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest(401, "this endpoint needs `Authorization: Bearer <MINING_PREDICT_TOKEN>` to predict")
    given = token.strip().encode()
    if not (secrets.compare_digest(given, predict_token.encode()) or secrets.compare_digest(given, admin_token.encode())):
        raise BadRequest(403, "the bearer token is not the endpoint's predict token")
