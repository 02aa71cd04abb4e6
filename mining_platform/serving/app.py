"""The scoring endpoint: every project's champion (and challenger) behind `/v1/<p>/…` (API in docs/endpoint.md).

Each project holds one immutable `ServedModel` per role. A request takes references to them once and finishes on
them; a reload loads and smoke-tests the new version in a worker thread, then replaces the reference in the event
loop between two requests. So a swap never fails or delays a request, and a version that cannot be loaded never
replaces one that works. The challenger is loaded, checked and reloaded like the champion, on its own.

A challenger runs as the project file's `serving.challenger` says: in `shadow` mode it scores the requests the
prediction log records, after the champion's answer has been sent, and is never the answer; in `canary` mode it
answers a sticky share of the entities (`mining_platform.spec.routing`) and of the row requests that send an
`X-Request-Key` (others are drawn at random). Every logged prediction names its version and role.

What each role serves is the project's serving record in MongoDB (`serving_desired`, written by `<p>/deployment`),
else the role's MLflow alias. Every replica follows the records on its own (a change stream, polling as the
fallback) and reports what it serves in a heartbeat (`serving.replicas`); a failed version is tried again by /reload.

The rooms: this module holds the routes and the lifespan; `state` what each project's roles serve, `swap` the
loading and swapping, `answer` who answers a request and what is logged, `split` the canary split, `payload` the
request bodies, `online_features` the entity lookup, `prediction_log` the log, `replicas` the following and
heartbeats, `health` what `/health` says.
"""

import contextlib
import datetime as dt
import json
import logging
import secrets
import time
from typing import Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pymongo import AsyncMongoClient
from starlette.background import BackgroundTask
from starlette.routing import Route

from mining_platform.serving.answer import Answerer
from mining_platform.serving.api import PREDICT_BODY, PROBLEMS, RELOAD_PROBLEMS, Prediction
from mining_platform.serving.config import ServingConfig, serving_config_from_environment
from mining_platform.serving.health import health_report, readiness, require_predict_token
from mining_platform.serving.metrics import EndpointMetrics
from mining_platform.serving.online_features import FeatureStoreUnavailable, OnlineFeatures
from mining_platform.serving.payload import (
    BadRequest,
    RowsRequest,
    parse_body,
    read_body,
    request_key,
    require_json,
    rows_matrix,
)
from mining_platform.serving.prediction_log import PredictionLog
from mining_platform.serving.replicas import Follower
from mining_platform.serving.served_model import ChampionLoadFailed, NoChampion, RegistryUnavailable
from mining_platform.serving.state import ProjectState, state_of
from mining_platform.serving.swap import Swapper
from mining_platform.spec.names import CHAMPION, PREDICTION_LOG, endpoint_database, project_database
from mining_platform.spec.project import ProjectConfigError
from mining_platform.spec.replicas import LoadError, Served

__all__ = ["ServingConfig", "create_app", "serving_config_from_environment"]
log = logging.getLogger("mining_platform.serving")


def _json(payload: dict, status: int = 200, background: BackgroundTask | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json", background=background)


def create_app(config: ServingConfig) -> FastAPI:
    states: dict[str, ProjectState] = {}
    prediction_log: PredictionLog | None = None
    follower: Follower | None = None
    started_at = dt.datetime.now(dt.timezone.utc)

    swapper = Swapper(config, lambda: follower)
    metrics = EndpointMetrics(states, prediction_log=lambda: prediction_log, follower=lambda: follower,
                              known=lambda name: name in states or name in config.unavailable, enabled=config.metrics)
    answerer = Answerer(lambda: prediction_log, metrics)

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
        return state_of(states, config.unavailable, name)

    bearer = HTTPBearer(auto_error=False, description="MINING_ADMIN_TOKEN, or the token in $MINING_HOME/admin_token")

    def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None:
            raise HTTPException(401, "admin call: send `Authorization: Bearer <MINING_ADMIN_TOKEN>`",
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), config.admin_token.encode()):
            raise HTTPException(403, "admin call: the bearer token is not the endpoint's admin token")

    @app.get("/health")
    async def health(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict:
        """Liveness and, per project, whether it serves a model; with the admin token also what and how (they name
        internal addresses and errors, so they are not for everyone who can reach the port)."""
        if credentials is not None:
            require_admin(credentials)
        return health_report(states, config.unavailable, started_at=started_at, admin=credentials is not None,
                             prediction_log=prediction_log, follower=follower)

    async def ready(request: Request) -> Response:  # the probes' readiness (health.readiness)
        return _json(*readiness(states))

    async def scrape(request: Request) -> Response:  # Prometheus (docs/operations.md)
        return metrics.response()

    app.add_route("/ready", ready, include_in_schema=False)
    app.add_route("/metrics", scrape, include_in_schema=False)

    @app.get("/v1/{project}/version", responses={404: PROBLEMS[404], 503: PROBLEMS[503]})
    async def version(project: str) -> dict:
        """The served model: name, version, alias, MLflow run id, model URI, features, loaded_at; and the challenger
        running next to it (with its mode and traffic), or null."""
        state = project_state(project)
        return {"project": project, **state.serving().describe(), "challenger": state.describe_challenger()}

    async def predict(request: Request) -> Response:
        project = request.path_params["project"]
        return await metrics.measured(project, lambda: scored(request, project))

    async def scored(request: Request, project: str) -> tuple[Response, list[tuple[str, str]]]:
        require_predict_token(request.headers.get("authorization"), predict_token=config.predict_token,
                              admin_token=config.admin_token)
        state = project_state(project)
        model = state.serving()  # this request's models, whatever a reload does meanwhile
        challenger = state.live_challenger(model)
        setting = state.setting
        require_json(request.headers.get("content-type"))
        key = request_key(request.headers.get("x-request-key"))
        body = await read_body(request, config.max_body_bytes, config.body_timeout_seconds)
        parsed = parse_body(body, max_rows=config.max_batch)
        if isinstance(parsed, RowsRequest):
            X = rows_matrix(parsed.rows, model.features, model.boolean_features)
            as_of = newest = None
        else:
            clock = time.perf_counter()
            looked_up = await state.online.lookup(model, parsed.entities)
            metrics.looked_up(project, time.perf_counter() - clock)
            X, as_of, newest = looked_up.X, looked_up.as_of, looked_up.newest
        payload, background, answered = await answerer.answer(state, model, challenger, setting, X, parsed, key=key,
                                                              newest=newest)
        if as_of is not None:
            payload["features_as_of"] = as_of
        return _json(payload, background=background), answered

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
