"""A source of project.yaml (`sources.<key>`): a collection of events the platform observes and never writes, and
the name patterns project files use."""

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mining_platform import settings
from mining_platform.spec.names import collection_problem, database_problem, demo_database
from mining_platform.spec.strict import Strict

# A project name is an asset-key prefix, a Python attribute of sensors.definitions and part of database names.
PROJECT_NAME = r"^[a-z][a-z0-9_]*$"
# A field path of a source document (dots for nesting): no `$`, no empty parts.
FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
COLLECTION_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
DATABASE_NAME = r"^[A-Za-z0-9_-]{1,63}$"
KEY_NAME = r"^[a-z][a-z0-9_]*$"


def platform_of(info: ValidationInfo) -> str:
    """The platform database a project file is checked against: `load_project(platform=…)`, else MINING_MONGO_DB."""
    return (info.context or {}).get("platform") or settings.setting("MINING_MONGO_DB")


class SourceConfig(Strict):
    """A collection of events the platform observes and never writes (except a demo source it created)."""

    collection: str = Field(pattern=COLLECTION_NAME, max_length=120)
    database: str | None = Field(default=None, pattern=DATABASE_NAME,
                                 description="Another database of the same cluster (default MINING_MONGO_DB).")
    demo_of: str | None = Field(
        default=None, pattern=PROJECT_NAME,
        description="The demo events of this project or another one: the collection in that project's demo database "
        "`<MINING_MONGO_DB>_<demo_of>-demo`, which only its demo generator writes. Set by the platform for the source "
        "a `demo:` block names.")
    timestamp: str = Field(pattern=FIELD_PATH, description="The event-time field (a BSON date).")
    lateness_days: int = Field(default=0, ge=0, le=365,
                               description="A day is complete once the source holds events this many days past its end.")

    @field_validator("collection")
    @classmethod
    def _not_platform(cls, collection: str) -> str:
        problem = collection_problem(collection)
        if problem:
            raise ValueError(problem)
        return collection

    @field_validator("database")
    @classmethod
    def _not_server(cls, database: str | None, info: ValidationInfo) -> str | None:
        problem = database_problem(platform_of(info), database)
        if problem:
            raise ValueError(problem)
        return database

    @model_validator(mode="after")
    def _one_database(self) -> "SourceConfig":
        if self.database is not None and self.demo_of is not None:
            raise ValueError(f"set database or demo_of, not both: demo events live in their project's demo database "
                             f"(<MINING_MONGO_DB>_{self.demo_of}-demo)")
        return self

    def database_name(self, platform: str) -> str:
        """The database this source lives in, given the platform database (MINING_MONGO_DB)."""
        if self.demo_of is not None:
            return demo_database(platform, self.demo_of)
        return self.database or platform
