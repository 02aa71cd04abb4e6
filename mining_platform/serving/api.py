"""Request and response shapes of the endpoint, for its OpenAPI page (the hot path parses bodies itself)."""

from pydantic import BaseModel, Field


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
    task: str = Field(description="binary: predictions are probabilities of the label; regression: predicted values; "
                                  "multiclass: a probability per class.")
    classes: list[str] | None = Field(default=None, description="multiclass: the class names, in probability order.")


class ChallengerRef(BaseModel):
    name: str
    version: str
    mode: str = Field(description="shadow: scored for the prediction log, never the answer; canary: answers a sticky "
                                  "share of entities and request keys.")


class Prediction(BaseModel):
    model: ModelRef = Field(description="The champion.")
    predictions: list[float] | list[list[float]] = Field(
        description="In request order: the probability of the label (binary), its predicted value (regression), or "
                    "the probability of each class, in `classes` order, summing to 1 (multiclass).")
    classes: list[str] | None = Field(default=None, description="multiclass: the class names.")
    predicted_class: list[str] | None = Field(default=None, description="multiclass: each row's most likely class.")
    features_as_of: dict[str, str] | None = Field(
        default=None, description="With entities: the as_of of the partition each feature set was read from.")
    challenger: ChallengerRef | None = Field(default=None, description="The challenger running next to the champion.")
    versions: list[str] | None = Field(
        default=None, description="With a canary: the version that answered each prediction, in request order.")


class Problem(BaseModel):
    detail: str


PROBLEMS = {status: {"model": Problem, "description": text} for status, text in {
    400: "The body is not JSON.",
    404: "Unknown project, or an entity without committed features.",
    409: "The deployed model and the feature store disagree (feature versions, unknown features).",
    408: "The body did not fully arrive in time.",
    413: "Too many rows or entities, or a body too large.",
    415: "The body is not sent as JSON (Content-Type: application/json).",
    422: "Wrong shape, missing or unknown features, wrong types, NaN or Infinity.",
    503: "No model is deployed yet, or MongoDB did not answer an entity lookup.",
}.items()}
RELOAD_PROBLEMS = {
    401: {"model": Problem}, 403: {"model": Problem}, 404: PROBLEMS[404],
    409: {"model": Problem, "description": "No champion, or it cannot be served; the old model keeps serving."},
    502: {"model": Problem, "description": "MLflow did not answer; the old model keeps serving."},
}
PREDICT_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        PredictRows.model_json_schema(), PredictEntities.model_json_schema()]}}}},
    "parameters": [{"name": "X-Request-Key", "in": "header", "required": False, "schema": {
        "type": "string", "minLength": 1, "maxLength": 256}, "description": "With a canary challenger: routes a row "
        "request as a sticky key (a user, session or order id); entities are routed by their own id."}],
}
