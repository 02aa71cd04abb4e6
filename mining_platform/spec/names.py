"""Every name the platform gives a collection, a pipeline or an asset (docs/definitions.md and docs/configuration.md list them).

Asset keys are paths of strings here; the Dagster layer turns them into `AssetKey`s
(`assets.keys`), and messages show them joined with "/".
"""

# A project's namespace is its own database, `<MINING_MONGO_DB>_<project>`: everything the project writes
# lives there, so two projects' collections never meet and MongoDB roles can grant one project's
# database alone. These are the platform collections in each project's namespace:
FEATURE_PIPELINES = "feature_pipelines"  # one immutable document per feature/label definition version
PIPELINE_RUNS = "pipeline_runs"  # the audit record of every partition run
FEATURE_MARKERS = "feature_partitions"  # commit markers of feature partitions
SAMPLE_MARKERS = "sample_partitions"  # commit markers of sample partitions
PREDICTION_LOG = "prediction_log"  # the endpoint's sampled predictions (in the endpoint database)
PREDICTION_MARKERS = "prediction_partitions"  # commit markers of batch prediction partitions
SERVING_DESIRED = "serving_desired"  # per role, the version every endpoint replica must serve
SERVING_REPLICAS = "serving_replicas"  # one heartbeat per endpoint replica: what it serves (endpoint database)
PROMOTIONS = "promotions"  # the audit of every champion/challenger move
# In a demo project's demo database (below): the collections its generator created, the only ones it writes.
DEMO_COLLECTIONS = "demo_collections"

# Collections of a namespace by prefix (one per feature set or project), and every name above: what a
# definition may never read, and what `source` may never name.
PLATFORM_COLLECTIONS = frozenset({
    FEATURE_PIPELINES, PIPELINE_RUNS, FEATURE_MARKERS, SAMPLE_MARKERS, PREDICTION_MARKERS, PREDICTION_LOG,
    SERVING_DESIRED, SERVING_REPLICAS, PROMOTIONS, DEMO_COLLECTIONS})
PLATFORM_PREFIXES = ("features_", "samples_", "labels_", "tiles_", "predictions_", "system.")
# MongoDB's own databases, never a source (in any case: MongoDB refuses database names that differ only in case).
SERVER_DATABASES = frozenset({"admin", "local", "config"})
MAX_DATABASE_NAME = 63  # MongoDB database names are shorter than 64 bytes
# What the endpoint writes for a project (its sampled predictions, its replicas' heartbeats) lives in a database of
# its own, `<namespace>-endpoint`: MongoDB grants are per collection, but the embedded server applies them to the
# whole database, so the one database the endpoint may write holds nothing that decides what is served. The
# hyphen cannot occur in a project name, so this is never another project's namespace.
ENDPOINT_SUFFIX = "-endpoint"
# What a project's demo generator writes (its seeded events, its claims) lives in `<namespace>-demo`, for the same
# reason: the one database the generator may write holds only demo events. Other projects read them as a source
# with `demo_of: <project>`; no source names a `<MINING_MONGO_DB>_…` database directly.
DEMO_SUFFIX = "-demo"

# MLflow aliases: the version the endpoint serves, the one it replaced, and the one it runs beside it. Tags (MLflow
# and Dagster), job and sensor names live in `spec.tags`.
CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"  # a version the endpoint runs next to the champion, in shadow or canary
ROLES = (CHAMPION, CHALLENGER)

# Fields the platform writes next to the features of every feature document.
RESERVED_FEATURE_FIELDS = frozenset({"_id", "as_of", "run_id", "pipeline_version"})
# Fields a sample row carries besides the entity, the features and the label.
SAMPLE_FIELDS = frozenset({"feature_versions"})


def project_database(platform: str, project: str) -> str:
    """The database holding everything a project writes: `<MINING_MONGO_DB>_<project>`."""
    name = f"{platform}_{project}"
    if len(name.encode()) > MAX_DATABASE_NAME:
        raise ValueError(f"database {name!r} (MINING_MONGO_DB {platform!r} + project {project!r}) is longer than "
                         f"{MAX_DATABASE_NAME} bytes: shorten MINING_MONGO_DB or the project name")
    return name


def endpoint_database(platform: str, project: str) -> str:
    """The database the endpoint writes for a project: `<MINING_MONGO_DB>_<project>-endpoint`."""
    return project_database(platform, project + ENDPOINT_SUFFIX)


def demo_database(platform: str, project: str) -> str:
    """The database a project's demo generator writes: `<MINING_MONGO_DB>_<project>-demo`."""
    return project_database(platform, project + DEMO_SUFFIX)


def endpoint_database_of(namespace: str) -> str:
    """The endpoint database beside a namespace database name (readers that hold the namespace)."""
    return namespace + ENDPOINT_SUFFIX


def max_project_name_bytes(platform: str) -> int:
    """The longest project name whose databases (`<platform>_<p>`, `<platform>_<p>-endpoint`) MongoDB accepts."""
    return MAX_DATABASE_NAME - len(platform.encode()) - 1 - len(ENDPOINT_SUFFIX)


def is_namespace_of_some_project(platform: str, database: str) -> bool:
    """True for a database named like a project namespace of this platform (`<MINING_MONGO_DB>_…`, in any case)."""
    return database.lower().startswith(f"{platform.lower()}_")


def is_platform_collection(collection: str) -> bool:
    """A collection the platform writes or the server keeps (`system.*`): never a definition's to read."""
    return collection in PLATFORM_COLLECTIONS or collection.startswith(PLATFORM_PREFIXES)


def collection_problem(collection: str) -> str | None:
    """Why a source may not name `collection` (in any database), or None: never a platform collection, by name or
    prefix, and never `system.*`."""
    if collection.startswith("system."):
        return f"{collection!r}: a system collection cannot be a source"
    if is_platform_collection(collection):
        return (f"{collection!r} is a platform collection (or named like one: "
                f"{', '.join(PLATFORM_PREFIXES[:-1])}…): it cannot be a source")
    return None


def database_problem(platform: str | None, database: str | None) -> str | None:
    """Why a source may not live in `database`, or None: never MongoDB's own databases (in any case), and, given the
    platform database, never a project's namespace or endpoint database (`<platform>_…`, in any case)."""
    if database is None or database == platform:
        return None
    if database.lower() in SERVER_DATABASES:
        return f"{database!r} is one of MongoDB's own databases: it cannot hold a source"
    if platform is not None and (is_namespace_of_some_project(platform, database)
                                 or database.lower() == platform.lower()):
        return (f"{database!r} is named like a project's namespace ({platform}_<project>) or like the platform "
                f"database in another case: it cannot hold a source")
    return None


def source_problem(platform: str, database: str | None, collection: str) -> str | None:
    """Why a source may not name `database.collection`, or None: the one rule `load_project`, `provision` and the
    readers apply."""
    return collection_problem(collection) or database_problem(platform, database)


def feature_collection(feature_set: str) -> str:
    return f"features_{feature_set}"


def tiles_collection(feature_set: str) -> str:
    """A windowed feature set's daily tiles (per-entity partial aggregates of one source day)."""
    return f"tiles_{feature_set}"


def tiles_pipeline(feature_set: str) -> str:
    """The pipeline name of a windowed feature set's tiles in `pipeline_runs` and `feature_partitions`."""
    return f"tiles/{feature_set}"


def tiles_asset(project: str, feature_set: str) -> tuple[str, ...]:
    return (project, "tiles", feature_set)


def samples_collection(project: str) -> str:
    return f"samples_{project}"


def samples_pipeline(project: str) -> str:
    """The pipeline name of a project's sample builds in `pipeline_runs` and `sample_partitions`."""
    return f"{project}/samples"


def labels_collection(project: str) -> str:
    """Where a sample build puts the label documents of its run before joining them (then removes them)."""
    return f"labels_{project}"


def predictions_collection(project: str) -> str:
    """A project's batch predictions: one document per (entity, as_of, role) per published run."""
    return f"predictions_{project}"


def predictions_pipeline(project: str) -> str:
    """The pipeline name of a project's batch scoring in `pipeline_runs` and `prediction_partitions`."""
    return f"{project}/predictions"


def source_asset(project: str, source: str) -> tuple[str, ...]:
    """The observed asset of a source (a collection the platform never writes)."""
    return (project, "sources", source)


def demo_asset(project: str, source: str) -> tuple[str, ...]:
    """The opt-in demo generator that fills a demo source."""
    return (project, "demo", source)


def feature_asset(project: str, feature_set: str) -> tuple[str, ...]:
    return (project, "features", feature_set)


def project_asset(project: str, asset: str) -> tuple[str, ...]:
    """`samples`, `model`, `deployment`, `drift_report`, `predictions`, `performance`."""
    return (project, asset)


def shown(path: tuple[str, ...]) -> str:
    """An asset path as the UI shows it: churn/features/user_activity."""
    return "/".join(path)
