"""Every tag the platform writes or reads (MLflow and Dagster), and every job and sensor name: one home, so a
name written in one place is never read back through a copy of its spelling in another.

MLflow tags are on a version's run and on the registered version; Dagster run tags are on the runs the
sensors launch, and the model and deployment assets copy the `mining.*` ones onto MLflow.
"""

# --- MLflow: what a version is and how it was judged (tags of its run and of the registered version)
GATE_TAG = "mining.gate"  # the gate's verdict: only `passed` may be served, as champion or challenger
GATE_REASON_TAG = "mining.gate_reason"
PASSED, FAILED = "passed", "failed"
TASK_TAG = "mining.task"  # binary or regression: what the version's scores are
TASK_PARAMETERS_TAG = "mining.task_parameters"  # JSON, for a task made with parameters (Task.parameters)
FEATURES_TAG = "mining.features"  # feature set -> version and hash the version was trained on
LABEL_TAG = "mining.label"  # the label definition: name, version, hash
SAMPLES_TAG = "mining.samples"  # the sample partitions trained and validated on
PROJECT_TAG = "mining.project"
DAGSTER_RUN_TAG = "mining.dagster_run_id"  # the Dagster run that trained it
DEPLOYED_BY_TAG = "mining.deployed_by"  # the Dagster run that deployed it
DEPLOYED_AS_TAG = "mining.deployed_as"  # champion or challenger

# --- Dagster run tags the sensors set (copied onto MLflow by the model and deployment assets)
PLATFORM_TAG_PREFIX = "mining."  # every tag above and below: what the model asset copies onto the version's run
CAUSE_TAG = "mining.cause"  # why the run happened: drift, performance, champion_moved, …
DRIFT_TAG_PREFIX = "mining.drift."  # a drift retrain's evidence
PERFORMANCE_TAG_PREFIX = "mining.performance."  # the realised-performance evidence of a sensor's decision
PROMOTION_TAG_PREFIX = "mining.promotion."  # what a deployment run moved: role, from, to, kind


def deployed_before_tag(role: str) -> str:
    """The version a role served when its alias was moved by hand (the champion sensor writes it, the deployment
    reads it): `mining.<role>.deployed_before`."""
    return f"mining.{role}.deployed_before"


def moved_version_tag(role: str) -> str:
    """The version a hand move named for a role: `mining.<role>.version`."""
    return f"mining.{role}.version"


# --- Dagster's own tags the platform reads
DATA_VERSION_TAG = "dagster/data_version"
PARTITION_TAG = "dagster/partition"
# A partition-range run (Dagster's documented backfill tags): start and end.
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
SENSOR_TAG = "dagster/sensor_name"


# --- Job and sensor names of a project
def retrain_job(project: str) -> str:
    return f"{project}_retrain_job"


def deploy_job(project: str) -> str:
    return f"{project}_deploy_job"


def drift_report_job(project: str) -> str:
    return f"{project}_drift_report_job"


def performance_job(project: str) -> str:
    return f"{project}_performance_job"


def observe_sources_job(project: str) -> str:
    return f"{project}_observe_sources_job"


def sensor_name(project: str, kind: str) -> str:
    """`<p>_<kind>_sensor`, kind one of SENSORS or ALERT_SENSORS."""
    assert kind in SENSORS + ALERT_SENSORS, kind
    return f"{project}_{kind}_sensor"


SENSORS = ("observe_sources", "automation", "drift", "champion", "performance")
ALERT_SENSORS = ("run_failure_alert", "replica_alert", "decision_alert")  # sensors/alerts.py
