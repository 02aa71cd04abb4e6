"""Every name the platform gives a collection, a pipeline or an asset (the README lists them).

Asset keys are paths of strings here; the Dagster layer turns them into `AssetKey`s
(`mining_platform.keys`), and messages show them joined with "/".
"""

# A project's namespace is its own database, `<MINING_MONGO_DB>_<project>`: everything the project writes
# lives there, so two projects' collections never meet and MongoDB roles can grant one project's
# database alone. These are the platform collections in each project's namespace:
FEATURE_PIPELINES = "feature_pipelines"  # one immutable document per feature/label definition version
PIPELINE_RUNS = "pipeline_runs"  # the audit record of every partition run
FEATURE_MARKERS = "feature_partitions"  # commit markers of feature partitions
SAMPLE_MARKERS = "sample_partitions"  # commit markers of sample partitions
PREDICTION_LOG = "prediction_log"  # the endpoint's sampled predictions
PREDICTION_MARKERS = "prediction_partitions"  # commit markers of batch prediction partitions
SERVING_DESIRED = "serving_desired"  # per role, the version every endpoint replica must serve
SERVING_REPLICAS = "serving_replicas"  # one heartbeat per endpoint replica: what it serves
PROMOTIONS = "promotions"  # the audit of every champion/challenger move
# Platform-wide, in MINING_MONGO_DB itself (keyed by project):
DEMO_COLLECTIONS = "demo_collections"  # the collections the demo generator created (the only ones it writes)

# Collections of a namespace by prefix (one per feature set or project), and every name above: what a
# definition may never read, and what `source` may never name.
PLATFORM_COLLECTIONS = frozenset({
    FEATURE_PIPELINES, PIPELINE_RUNS, FEATURE_MARKERS, SAMPLE_MARKERS, PREDICTION_MARKERS, PREDICTION_LOG,
    SERVING_DESIRED, SERVING_REPLICAS, PROMOTIONS, DEMO_COLLECTIONS})
PLATFORM_PREFIXES = ("features_", "samples_", "labels_", "tiles_", "predictions_", "system.")
# MongoDB's own databases, never a source.
SERVER_DATABASES = frozenset({"admin", "local", "config"})
MAX_DATABASE_NAME = 63  # MongoDB database names are shorter than 64 bytes

# MLflow: the alias the endpoint serves, the one it replaced, and the tag naming the feature set
# versions a model version was trained on.
CHAMPION = "champion"
PREVIOUS = "previous"
# The gate verdict tag of a version: only `passed` may be served, as champion or challenger.
GATE_TAG = "mining.gate"
GATE_REASON_TAG = "mining.gate_reason"
PASSED, FAILED = "passed", "failed"
CHALLENGER = "challenger"  # a version the endpoint runs next to the champion, in shadow or canary
ROLES = (CHAMPION, CHALLENGER)
FEATURES_TAG = "mining.features"
# Why a run (and the version it trains) happened: Dagster run tags the model copies onto its MLflow run.
CAUSE_TAG = "mining.cause"
TASK_TAG = "mining.task"  # binary or regression: what the version's scores are
DRIFT_TAG_PREFIX = "mining.drift."
PERFORMANCE_TAG_PREFIX = "mining.performance."  # the realised-performance evidence of a sensor's decision

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


def is_namespace_of_some_project(platform: str, database: str) -> bool:
    """True for a database named like a project namespace of this platform (`<MINING_MONGO_DB>_…`)."""
    return database.startswith(f"{platform}_")


def is_platform_collection(collection: str) -> bool:
    """A collection the platform writes or the server keeps (`system.*`): never a definition's to read."""
    return collection in PLATFORM_COLLECTIONS or collection.startswith(PLATFORM_PREFIXES)


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
