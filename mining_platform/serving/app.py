"""The scoring endpoint: every project's champion behind `/v1/<p>/…` (API in DESIGN.md).

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
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient
from starlette.routing import Route

from mining_platform import settings
from mining_platform.features.definition import FeatureDefinition, load_feature_definitions
from mining_platform.project import ProjectConfig, load_project, project_names
from mining_platform.serving.champion import (
    ChampionLoadFailed, NoChampion, RegistryUnavailable, ServedModel, champion_version, load_version,
)
from mining_platform.serving.online_features import FeatureStoreUnavailable, OnlineFeatures
from mining_platform.serving.payload import BadRequest, EntitiesRequest, RowsRequest, parse_body, rows_matrix
from mining_platform.serving.prediction_log import COLLECTION, PredictionLog

log = logging.getLogger("mining_platform.serving")


@dataclass(frozen=True)
class ServedProject:
    config: ProjectConfig
    definitions: list[FeatureDefinition]


@dataclass(frozen=True)
class ServingConfig:
    projects: list[ServedProject]
    tracking_uri: str
    mongo_uri: str
    database: str
    admin_token: str
    unavailable: dict[str, str] = field(default_factory=dict)  # project -> why its files did not load
    log_sample_rate: float = 0.1
    max_batch: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    mongo_timeout_ms: int = 2000

    def __post_init__(self) -> None:
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ValueError(f"MINING_PREDICTION_LOG_SAMPLE_RATE must be within [0, 1], got {self.log_sample_rate}")
        if self.max_batch < 1:
            raise ValueError(f"MINING_MAX_BATCH must be at least 1, got {self.max_batch}")


@dataclass
class ProjectState:
    project: ServedProject
    online: OnlineFeatures
    model: ServedModel | None = None
    status: str = "loading"
    last_reload_error: str | None = None  # the latest failed reload, until one succeeds
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def model_name(self) -> str:
        return self.project.config.model.name


# --- request and response shapes, for the OpenAPI page (the hot path parses bodies itself) ---

class PredictRows(BaseModel):
    rows: list[dict[str, float | bool | None]] = Field(
        description="Feature values by name, exactly the model's features; null is a missing value.",
        examples=[[{"events_30d": 12, "active_days_7d": 3}]])


class PredictEntities(BaseModel):
    entities: list[str | int] = Field(description="Entity ids: each is scored on its latest committed features.",
                                      examples=[["u000001"]])


class ModelRef(BaseModel):
    name: str
    version: str


class Prediction(BaseModel):
    model: ModelRef
    predictions: list[float] = Field(description="Probability of the label, in request order.")
    features_as_of: dict[str, str] | None = Field(
        default=None, description="With entities: the as_of of the partition each feature set was read from.")


class Problem(BaseModel):
    detail: str


PROBLEMS = {status: {"model": Problem, "description": text} for status, text in {
    400: "The body is not JSON.",
    404: "Unknown project, or an entity without committed features.",
    409: "The deployed model and the feature store disagree (feature versions, unknown features).",
    413: "Too many rows or entities, or a body too large.",
    422: "Wrong shape, missing or unknown features, wrong types, NaN or Infinity.",
    503: "No model is deployed yet, or MongoDB did not answer an entity lookup.",
}.items()}


def serving_config_from_environment() -> ServingConfig:
    """Every project under MINING_PROJECTS_DIR, with the MINING_* / MLFLOW_* settings (DESIGN.md)."""
    root = settings.projects_dir()
    projects, unavailable = [], {}
    for name in project_names(root):
        # A broken project file stops only that project, as it fails only its own code location.
        try:
            project = load_project(root / name)
            projects.append(ServedProject(project, load_feature_definitions(root / name, project)))
        except ValueError as exc:
            unavailable[name] = str(exc)
            log.error(f"project {name!r} is not served: {exc}")

    def number(name: str, kind):
        try:
            return kind(settings.setting(name))
        except ValueError:
            raise ValueError(f"{name}={settings.setting(name)!r} is not a {kind.__name__}") from None

    return ServingConfig(
        projects=projects,
        tracking_uri=settings.setting("MLFLOW_TRACKING_URI"),
        mongo_uri=settings.setting("MINING_MONGO_URI"),
        database=settings.setting("MINING_MONGO_DB"),
        admin_token=settings.admin_token(),
        unavailable=unavailable,
        log_sample_rate=number("MINING_PREDICTION_LOG_SAMPLE_RATE", float),
        max_batch=number("MINING_MAX_BATCH", int),
    )


def _json(payload: dict, status: int = 200) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body has {declared} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
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
            log.info(f"{state.project.config.name}: now serving {loaded.uri}"
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
                log.error(f"{state.project.config.name}: {state.status}")
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
        db = client[config.database]
        for served in config.projects:
            project = served.config
            states[project.name] = ProjectState(served, OnlineFeatures(
                db, project=project.name, entity=project.entity, definitions=served.definitions))
        prediction_log = PredictionLog(db[COLLECTION], sample_rate=config.log_sample_rate)
        prediction_log.start()
        loaders = [asyncio.create_task(load_at_start(state)) for state in states.values()]
        try:
            yield
        finally:
            for loader in loaders:
                loader.cancel()
            await prediction_log.stop()
            await client.close()

    app = FastAPI(
        title="mining-platform scoring endpoint",
        description="Scores rows or entities with each project's champion model (MLflow alias `champion`).",
        lifespan=lifespan,
    )

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return _json({"detail": str(exc)}, exc.status)

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
            raise BadRequest(503, f"project {state.project.config.name!r} serves no model yet ({state.status}); "
                                  f"materialise {state.project.config.name}/deployment")
        return model

    bearer = HTTPBearer(auto_error=False, description="MINING_ADMIN_TOKEN, or the token in $MINING_HOME/admin_token")

    def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None:
            raise HTTPException(401, "admin call: send `Authorization: Bearer <MINING_ADMIN_TOKEN>`",
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), config.admin_token.encode()):
            raise HTTPException(403, "admin call: the bearer token is not the endpoint's admin token")

    @app.get("/health")
    async def health() -> dict:
        """Liveness, what each project serves, and the prediction log's counters."""
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
        parsed = parse_body(await _read_body(request, config.max_body_bytes), max_rows=config.max_batch)
        if isinstance(parsed, RowsRequest):
            X = rows_matrix(parsed.rows, model.features, model.boolean_features)
            as_of = None
        else:
            looked_up = await state.online.lookup(model, parsed.entities)
            X, as_of = looked_up.X, looked_up.as_of
        predictions = model.predict(X).tolist()
        if prediction_log.sampled():
            prediction_log.record(_log_documents(project, model, X, predictions, parsed))
        payload = {"model": {"name": model.name, "version": model.version}, "predictions": predictions}
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
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            PredictRows.model_json_schema(), PredictEntities.model_json_schema()]}}}}},
    )
    async def documented_predict(project: str, request: Request) -> Response:
        """Score `rows` of feature values, or `entities` on their latest committed features."""
        return await predict(request)

    @app.post("/v1/{project}/reload", dependencies=[Depends(require_admin)],
              responses={401: {"model": Problem}, 403: {"model": Problem}, 404: PROBLEMS[404],
                         409: {"model": Problem, "description": "No champion, or it cannot be served; the old model keeps serving."},
                         502: {"model": Problem, "description": "MLflow did not answer; the old model keeps serving."}})
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


def _log_documents(project: str, model: ServedModel, X, predictions: list[float], parsed) -> list[dict]:
    """One record per scored row: the features as the model saw them (floats; missing as null)."""
    now = dt.datetime.now(dt.timezone.utc)
    model_ref = {"name": model.name, "version": model.version}
    entities = parsed.entities if isinstance(parsed, EntitiesRequest) else [None] * len(predictions)
    return [
        {"project": project, "model": model_ref, "time": now, "score": score,
         "features": {f: (None if v != v else v) for f, v in zip(model.features, row)},  # NaN != NaN
         **({"entity": entity} if entity is not None else {})}
        for row, score, entity in zip(X.tolist(), predictions, entities)
    ]
