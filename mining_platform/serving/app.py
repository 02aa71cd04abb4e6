"""The scoring endpoint: every project's champion behind `/v1/<p>/…` (API in the README, "Scoring endpoint").

Each project holds one immutable `ServedModel`. A request takes a reference to it
once and finishes on it; a reload loads and smoke-tests the new champion in a worker
thread and then replaces the reference in the event loop, between two requests. So
a swap never fails or delays a request, and a champion that cannot be loaded never
replaces one that works.
"""

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pymongo import AsyncMongoClient
from starlette.routing import Route

from mining_platform.serving.api import PREDICT_BODY, PROBLEMS, RELOAD_PROBLEMS, Prediction
from mining_platform.serving.config import ServingConfig, serving_config_from_environment
from mining_platform.serving.online_features import FeatureStoreUnavailable, OnlineFeatures
from mining_platform.serving.payload import BadRequest, RowsRequest, parse_body, require_json, rows_matrix
from mining_platform.serving.prediction_log import PredictionLog, log_documents
from mining_platform.serving.served_model import (
    ChampionLoadFailed, NoChampion, RegistryUnavailable, ServedModel, champion_version, load_version,
)
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import PREDICTION_LOG, project_database

__all__ = ["ServingConfig", "create_app", "serving_config_from_environment"]
log = logging.getLogger("mining_platform.serving")


@dataclass
class ProjectState:
    spec: ProjectSpec
    online: OnlineFeatures
    model: ServedModel | None = None
    status: str = "loading"
    last_reload_error: str | None = None  # the latest failed reload, until one succeeds
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def model_name(self) -> str:
        return self.spec.project.model.name


def _json(payload: dict, status: int = 200) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


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
    started_at = dt.datetime.now(dt.timezone.utc)

    async def swap_to_champion(state: ProjectState) -> dict:
        """Load the champion and swap it in; the old model keeps serving unless this succeeds."""
        async with state.lock:  # one load per project at a time; requests never take this lock
            version = await asyncio.to_thread(champion_version, config.tracking_uri, state.model_name)
            current = state.model
            if current is not None and current.version == version:
                return {"changed": False, "model": current.describe(), "previous": None}
            loaded = await asyncio.to_thread(load_version, config.tracking_uri, state.model_name, version)
            state.model, state.status = loaded, "serving"  # the swap: one reference assignment
            log.info(f"{state.spec.name}: now serving {loaded.uri}"
                     + (f" (was version {current.version})" if current else ""))
            return {"changed": True, "model": loaded.describe(), "previous": current.describe() if current else None}

    async def load_at_start(state: ProjectState) -> None:
        """Serve the champion as soon as MLflow answers (it may start after the endpoint)."""
        delay = 1.0
        while state.model is None:
            try:
                await swap_to_champion(state)
                return
            except NoChampion as exc:
                state.status = f"no model deployed: {exc}"
                return
            except ChampionLoadFailed as exc:
                state.status = f"champion failed to load: {exc}"
                log.error(f"{state.spec.name}: {state.status}")
                return
            except RegistryUnavailable as exc:
                state.status = f"waiting for MLflow: {exc}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal prediction_log
        client = AsyncMongoClient(config.mongo_uri, tz_aware=True, appname="mining-platform-endpoint",
                                  serverSelectionTimeoutMS=config.mongo_timeout_ms,
                                  timeoutMS=config.mongo_timeout_ms * 2)
        # Each project's features and log live in its own namespace (`<database>_<project>`).
        namespaces = {spec.name: client[project_database(config.database, spec.name)] for spec in config.projects}
        for spec in config.projects:
            states[spec.name] = ProjectState(spec, OnlineFeatures(
                namespaces[spec.name], project=spec.name, entity=spec.entity, definitions=list(spec.definitions)))
        prediction_log = PredictionLog({p: db[PREDICTION_LOG] for p, db in namespaces.items()},
                                       sample_rate=config.log_sample_rate)
        prediction_log.start()
        loaders = [asyncio.create_task(load_at_start(state)) for state in states.values()]
        try:
            yield
        finally:
            for loader in loaders:
                loader.cancel()
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
            raise BadRequest(503, f"project {state.spec.name!r} serves no model yet ({state.status}); "
                                  f"materialise {state.spec.name}/deployment")
        return model

    bearer = HTTPBearer(auto_error=False, description="MINING_ADMIN_TOKEN, or the token in $MINING_HOME/admin_token")

    def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None:
            raise HTTPException(401, "admin call: send `Authorization: Bearer <MINING_ADMIN_TOKEN>`",
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), config.admin_token.encode()):
            raise HTTPException(403, "admin call: the bearer token is not the endpoint's admin token")

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
                    "status": state.status,
                    "last_reload_error": state.last_reload_error,
                }
                for name, state in states.items()
            } | {name: {"model": None, "version": None, "status": f"not served: {problem}"}
                 for name, problem in config.unavailable.items()},
            "prediction_log": prediction_log.describe() if prediction_log else None,
        }

    @app.get("/v1/{project}/version", responses={404: PROBLEMS[404], 503: PROBLEMS[503]})
    async def version(project: str) -> dict:
        """The served model: name, version, alias, MLflow run id, model URI, features, loaded_at."""
        state = project_state(project)
        return {"project": project, **serving_model(state).describe()}

    async def predict(request: Request) -> Response:
        project = request.path_params["project"]
        state = project_state(project)
        model = serving_model(state)  # this request's model, whatever a reload does meanwhile
        require_json(request.headers.get("content-type"))
        body = await _read_body(request, config.max_body_bytes, config.body_timeout_seconds)
        parsed = parse_body(body, max_rows=config.max_batch)
        if isinstance(parsed, RowsRequest):
            X = rows_matrix(parsed.rows, model.features, model.boolean_features)
            as_of = None
        else:
            looked_up = await state.online.lookup(model, parsed.entities)
            X, as_of = looked_up.X, looked_up.as_of
        predictions = model.predict(X).tolist()
        if prediction_log.sampled():
            prediction_log.record(log_documents(project, model, X, predictions, parsed))
        payload = {"model": {"name": model.name, "version": model.version, "task": model.task},
                   "predictions": predictions}
        if as_of is not None:
            payload["features_as_of"] = as_of
        return _json(payload)

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
    async def reload(project: str) -> Response:
        """Load `models:/<model>@champion`, check its signature and a smoke prediction, swap it in atomically."""
        state = project_state(project)
        serving = state.model.version if state.model else None
        keeps = f"; still serving version {serving}" if serving else "; nothing is served"
        try:
            swapped = await swap_to_champion(state)
        except (NoChampion, ChampionLoadFailed, RegistryUnavailable) as exc:
            state.last_reload_error = f"{dt.datetime.now(dt.timezone.utc).isoformat()}: {exc}"
            return _json({"detail": f"{exc}{keeps}"}, 502 if isinstance(exc, RegistryUnavailable) else 409)
        state.last_reload_error = None
        return _json(swapped)

    return app
