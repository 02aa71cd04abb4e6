"""The scoring endpoint: every project's champion (and challenger) behind `/v1/<p>/…` (API in
docs/endpoint.md).

Each project holds one immutable `ServedModel` per role. A request takes references to
them once and finishes on them; a reload loads and smoke-tests the new version in a
worker thread and then replaces the reference in the event loop, between two
requests. So a swap never fails or delays a request, and a version that cannot be
loaded never replaces one that works. The challenger is loaded, checked and reloaded
exactly like the champion, on its own: its failures never touch the champion.

A challenger runs as the project file's `serving.challenger` says: in `shadow` mode it
scores the requests the prediction log records (its scores exist only there), after
the champion's answer has been sent, and is never the answer; in `canary` mode it
answers a sticky share of the entities (`mining_platform.spec.routing`) and of the row
requests that send an `X-Request-Key` (row requests without one are drawn at random).
Every logged prediction names its version and role.

What each role serves is the project's serving record in MongoDB (`serving_desired`, written
by `<p>/deployment`), else the role's MLflow alias (before any record exists, or while MongoDB
cannot be read). Every replica follows the records on its own, through a change stream with
polling as the fallback, and reports what it serves in a heartbeat document
(`mining_platform.serving.replicas`): replicas behind a Service converge with no fan-out list,
and the deployer knows when they have. A version that failed to load is not tried again for
the same record; `/reload` tries again.

The rooms: this module holds the routes and the lifespan; `state` what each project's roles serve,
`swap` the loading and swapping, `split` the canary split, `payload` the request bodies,
`online_features` the entity lookup, `prediction_log` the log, `replicas` the following and heartbeats.
"""

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
from typing import Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pymongo import AsyncMongoClient
from starlette.background import BackgroundTask
from starlette.routing import Route

from mining_platform.serving.api import PREDICT_BODY, PROBLEMS, RELOAD_PROBLEMS, Prediction
from mining_platform.serving.config import ServingConfig, serving_config_from_environment
from mining_platform.serving.online_features import FeatureStoreUnavailable, OnlineFeatures
from mining_platform.serving.payload import BadRequest, RowsRequest, parse_body, request_key, require_json, rows_matrix
from mining_platform.serving.prediction_log import PredictionLog, Scoring, log_documents
from mining_platform.serving.replicas import Follower
from mining_platform.serving.served_model import (
    ChampionLoadFailed,
    NoChampion,
    RegistryUnavailable,
    ServedModel,
)
from mining_platform.serving.split import canary_answers, canary_rows, champion_answers
from mining_platform.serving.state import ProjectState
from mining_platform.serving.swap import Swapper
from mining_platform.spec.names import (
    CHALLENGER,
    CHAMPION,
    PREDICTION_LOG,
    endpoint_database,
    project_database,
)
from mining_platform.spec.project import ProjectConfigError
from mining_platform.spec.replicas import LoadError, Served

__all__ = ["ServingConfig", "create_app", "serving_config_from_environment"]
log = logging.getLogger("mining_platform.serving")


def _json(payload: dict, status: int = 200, background: BackgroundTask | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json", background=background)


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, at most `limit` bytes, arrived within `timeout` seconds: a client trickling a body cannot hold
    a connection (and its memory) for ever."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body has {declared} bytes; at most {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BadRequest(413, f"the body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(408, f"the body did not arrive within {timeout:g} s ({size} bytes so far)") from None
    return b"".join(chunks)


def create_app(config: ServingConfig) -> FastAPI:
    states: dict[str, ProjectState] = {}
    prediction_log: PredictionLog | None = None
    follower: Follower | None = None
    started_at = dt.datetime.now(dt.timezone.utc)

    swapper = Swapper(config, lambda: follower)

    async def sync(project: str) -> bool:
        return await swapper.sync(states[project])

    def report(project: str) -> tuple[dict[str, Served], dict[str, LoadError]]:
        state = states[project]
        return state.served(), state.errors()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal prediction_log, follower
        client = AsyncMongoClient(config.mongo_uri, tz_aware=True, appname="mining-platform-endpoint",
                                  serverSelectionTimeoutMS=config.mongo_timeout_ms,
                                  timeoutMS=config.mongo_timeout_ms * 2)
        # Each project's features and serving records live in its namespace (`<database>_<project>`), read only;
        # what the endpoint writes (the prediction log, the heartbeats) in `<namespace>-endpoint`.
        namespaces = {spec.name: client[project_database(config.database, spec.name)] for spec in config.projects}
        written = {spec.name: client[endpoint_database(config.database, spec.name)] for spec in config.projects}
        for spec in config.projects:
            states[spec.name] = ProjectState(spec, OnlineFeatures(
                namespaces[spec.name], project=spec.name, entity=spec.entity, definitions=list(spec.definitions)))
        prediction_log = PredictionLog({p: db[PREDICTION_LOG] for p, db in written.items()},
                                       sample_rate=config.log_sample_rate, retention_days=config.log_retention_days,
                                       max_rows_per_request=config.log_max_rows)
        prediction_log.start()
        # The first sync loads each role as soon as MLflow answers (it may start after the endpoint).
        follower = Follower(namespaces, written, interval_seconds=config.heartbeat_seconds, sync=sync, report=report)
        follower.start()
        try:
            yield
        finally:
            await follower.stop()
            await prediction_log.stop()
            await client.close()

    # The /docs and /redoc pages load Swagger UI and ReDoc from files the endpoint serves itself (the
    # fastapi-offline package), not from a CDN: they work on machines without internet access.
    app = FastAPIOffline(
        title="mining-platform scoring endpoint",
        description="Scores rows or entities with each project's champion model (MLflow alias `champion`).",
        lifespan=lifespan,
        static_url="/docs-static",
    )

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        response = _json({"detail": str(exc)}, exc.status)
        if exc.status == 408:  # the rest of the body may still trickle in: end the connection
            response.headers["Connection"] = "close"
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(FeatureStoreUnavailable)
    async def store_unavailable(request: Request, exc: FeatureStoreUnavailable) -> Response:
        return _json({"detail": f"{exc}; rows can still be scored"}, 503)

    def project_state(name: str) -> ProjectState:
        state = states.get(name)
        if name in config.unavailable:
            raise BadRequest(503, f"project {name!r} is not served: its files do not load: {config.unavailable[name]}")
        if state is None:
            raise BadRequest(404, f"unknown project {name!r}; known: {', '.join(sorted(states))}")
        return state

    def serving_model(state: ProjectState) -> ServedModel:
        model = state.model
        if model is None:
            raise BadRequest(503, f"project {state.spec.name!r} serves no model yet ({state.roles[CHAMPION].status}); "
                                  f"materialise {state.spec.name}/deployment")
        return model

    bearer = HTTPBearer(auto_error=False, description="MINING_ADMIN_TOKEN, or the token in $MINING_HOME/admin_token")

    def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None:
            raise HTTPException(401, "admin call: send `Authorization: Bearer <MINING_ADMIN_TOKEN>`",
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), config.admin_token.encode()):
            raise HTTPException(403, "admin call: the bearer token is not the endpoint's admin token")

    def require_predict_token(header: str | None) -> None:
        """With MINING_PREDICT_TOKEN set, `/predict` needs `Authorization: Bearer <it>` (the admin token passes too)."""
        if config.predict_token is None:
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BadRequest(401, "this endpoint needs `Authorization: Bearer <MINING_PREDICT_TOKEN>` to predict")
        given = token.strip().encode()
        if not (secrets.compare_digest(given, config.predict_token.encode())
                or secrets.compare_digest(given, config.admin_token.encode())):
            raise BadRequest(403, "the bearer token is not the endpoint's predict token")

    @app.get("/health")
    async def health(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict:
        """Liveness and, per project, whether it serves a model. With the admin token also what each project
        serves, its status and last reload error, and the prediction log's counters (they name internal
        addresses and errors, so they are not for everyone who can reach the port)."""
        if credentials is None:
            return {
                "status": "ok",
                "started_at": started_at.isoformat(),
                "projects": {name: {"up": state.model is not None} for name, state in states.items()}
                | {name: {"up": False} for name in config.unavailable},
            }
        require_admin(credentials)
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
                 for name, problem in config.unavailable.items()},
            "prediction_log": prediction_log.describe() if prediction_log else None,
            "replica": follower.describe() if follower else None,
        }

    @app.get("/v1/{project}/version", responses={404: PROBLEMS[404], 503: PROBLEMS[503]})
    async def version(project: str) -> dict:
        """The served model: name, version, alias, MLflow run id, model URI, features, loaded_at; and the challenger
        running next to it (with its mode and traffic), or null."""
        state = project_state(project)
        return {"project": project, **serving_model(state).describe(), "challenger": state.describe_challenger()}

    async def challenger_matrix(state: ProjectState, challenger: ServedModel, model: ServedModel, X: np.ndarray,
                                parsed) -> np.ndarray | None:
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

    async def predict(request: Request) -> Response:
        require_predict_token(request.headers.get("authorization"))
        project = request.path_params["project"]
        state = project_state(project)
        model = serving_model(state)  # this request's models, whatever a reload does meanwhile
        challenger = state.live_challenger(model)
        setting = state.setting
        require_json(request.headers.get("content-type"))
        key = request_key(request.headers.get("x-request-key"))
        body = await _read_body(request, config.max_body_bytes, config.body_timeout_seconds)
        parsed = parse_body(body, max_rows=config.max_batch)
        if isinstance(parsed, RowsRequest):
            X = rows_matrix(parsed.rows, model.features, model.boolean_features)
            as_of = newest = None
        else:
            looked_up = await state.online.lookup(model, parsed.entities)
            X, as_of, newest = looked_up.X, looked_up.as_of, looked_up.newest
        background = None
        sampled = prediction_log.sampled()
        if challenger is not None and setting.mode == "canary":
            routed = canary_rows(project, challenger.version, setting.traffic, rows=X.shape[0], key=key,
                                 entities=None if isinstance(parsed, RowsRequest) else parsed.entities)
            X_challenger = await challenger_matrix(state, challenger, model, X, parsed) if any(routed) else None
            answer = canary_answers(model, challenger, X, X_challenger, routed)
        else:
            answer = champion_answers(model, X)
            if challenger is not None and sampled:
                # A shadow's scores exist only in the log: it scores the requests that are logged, after the
                # answer has been sent, so the champion's answers never wait for it.
                background = BackgroundTask(shadow_scores, state, challenger, model, X, parsed, answer.scorings,
                                            newest)
                sampled = False  # the task records both
        scores, scorings, versions = answer.scores, answer.scorings, answer.versions
        if sampled:
            prediction_log.record(log_documents(project, parsed, scorings, as_of=newest,
                                                only=prediction_log.cap(len(X))))
        payload = {"model": {"name": model.name, "version": model.version, **model.task.describe()},
                   **model.task.answer(scores)}
        if challenger is not None:
            payload["challenger"] = {"name": challenger.name, "version": challenger.version, "mode": setting.mode}
        if versions is not None:
            payload["versions"] = versions
        if as_of is not None:
            payload["features_as_of"] = as_of
        return _json(payload, background=background)

    async def shadow_scores(state: ProjectState, challenger: ServedModel, model: ServedModel, X: np.ndarray, parsed,
                            scorings: list[Scoring], newest) -> None:
        X_challenger = await challenger_matrix(state, challenger, model, X, parsed)
        if X_challenger is not None:
            scorings = [*scorings, Scoring(challenger, CHALLENGER, X_challenger, challenger.predict(X_challenger),
                                           range(len(X_challenger)), answered=False)]
        prediction_log.record(log_documents(state.spec.name, parsed, scorings, as_of=newest,
                                            only=prediction_log.cap(len(X))))

    # The hot path is a plain Starlette route, matched before FastAPI's: it skips FastAPI's
    # per-request dependency solving, ~20% more throughput (bench/serving.py). The FastAPI
    # declaration below documents it on the OpenAPI page and delegates to the same code.
    app.router.routes.insert(0, Route("/v1/{project}/predict", predict, methods=["POST"]))

    @app.post(
        "/v1/{project}/predict",
        response_model=Prediction,
        responses=PROBLEMS,
        openapi_extra=PREDICT_BODY,
    )
    async def documented_predict(project: str, request: Request) -> Response:
        """Score `rows` of feature values, or `entities` on their latest committed features."""
        return await predict(request)

    @app.post("/v1/{project}/reload", dependencies=[Depends(require_admin)], responses=RELOAD_PROBLEMS)
    async def reload(project: str, role: Literal["champion", "challenger"] = Query(
            default=CHAMPION, description="champion or challenger: load the version the role's serving record names "
            "(`models:/<model>@<role>` before any deployment wrote one); a challenger of none stops running one.")
            ) -> Response:
        """Load the version the role's serving record names (else its alias), check its gate, signature and a
        smoke prediction, swap it in atomically; a version that failed before is tried again. The other role is
        untouched. Only this replica reloads: the others follow the record on their own."""
        state = project_state(project)
        current = state.roles[role].model
        keeps = f"; still serving version {current.version} as {role}" if current else f"; no {role} is served"
        try:
            swapped = await swapper.swap(state, role)
        except (NoChampion, ChampionLoadFailed, RegistryUnavailable, ProjectConfigError) as exc:
            # ProjectConfigError: project.yaml no longer loads; the challenger keeps its mode and traffic
            state.roles[role].show_load_error(exc)
            await follower.beat(project)  # a deployer waiting on the replicas learns of the failure now
            return _json({"detail": f"replica {follower.replica}: {exc}{keeps}"},
                         502 if isinstance(exc, RegistryUnavailable) else 409)
        state.roles[role].show_load_error(None)
        if swapped["changed"]:
            await follower.beat(project)
        return _json({"role": role, **swapped})

    return app
