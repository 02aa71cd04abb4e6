"""The production files under deploy/, checked offline: the charts render (helm-python-sdk, no cluster) into manifests
that Kubernetes' own schemas accept (kubernetes-validate), the production dagster.yaml loads under Dagster's config
schema (its run launcher and storage under dagster-k8s' and dagster-postgres'), the values for Dagster's chart say
what that instance says and name every project, and the image installs what CI installs."""

import re
import tomllib
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import sqlalchemy
import yaml
from dagster._config import process_config
from dagster._config.field_utils import convert_potential_field
from dagster._core.instance.config import dagster_instance_config
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from mlflow.store.db.utils import create_sqlalchemy_engine

from assets import pools
from mining_platform import settings
from mining_platform.spec.project import project_names
from sensors import definitions

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# The oldest Kubernetes the charts declare (kubeVersion) and the newest schemas kubernetes-validate has.
KUBERNETES = ["1.27.0", kubernetes_validate.utils.latest_version()]
CHARTS = {
    "mining-endpoint": [{}, {"autoscaling": {"enabled": False}, "podDisruptionBudget": {"enabled": False},
                             "replicaCount": 2, "imagePullSecrets": [{"name": "registry"}],
                             "nodeSelector": {"pool": "serving"}}],
    "mlflow": [{}, {"s3EndpointUrl": "http://minio:9000", "allowedHosts": ["mlflow.example.com:443"],
                    "podDisruptionBudget": {"enabled": False}}],
}


def rendered(chart: str, values: dict, *, release: str = "mining") -> list[dict]:
    manifests = helm_python.Chart.load(DEPLOY / "charts" / chart).render(values, name=release, namespace="mining")
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in documents}


@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_each_chart_lints_clean(chart):
    report = helm_python.lint(DEPLOY / "charts" / chart, strict=True)
    assert report["errors"] == [] and all(m["severity"] < 2 for m in report["messages"]), report


@pytest.mark.parametrize(("chart", "values"), [(chart, values) for chart, cases in CHARTS.items() for values in cases])
@pytest.mark.parametrize("version", KUBERNETES)
def test_every_rendered_manifest_is_valid_kubernetes(chart, values, version):
    documents = rendered(chart, values)
    assert documents
    for document in documents:
        # strict: a field the schema does not know (a typo, a field of another version) is an error
        kubernetes_validate.validate(document, version, strict=True)


def test_the_endpoint_chart_runs_replicas_that_follow_the_serving_records():
    kinds = by_kind(rendered("mining-endpoint", {}))
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    deployment, pod = kinds["Deployment"], kinds["Deployment"]["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"][:2] == ["mining-platform", "serve"]
    # Traffic only once the champions are loaded (/ready); restarted only when it stops answering (/health).
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health"), ("startupProbe", "/ready")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
    env = {e["name"]: e for e in container["env"]}
    assert env["MINING_ENDPOINT_REPLICA"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["envFrom"] == [{"secretRef": {"name": "mining-endpoint"}}]  # credentials never in values
    token = next(e for e in container["env"] if e["name"] == "MINING_PREDICT_TOKEN")  # on in production
    assert token["valueFrom"]["secretKeyRef"] == {"name": "mining-endpoint", "key": "MINING_PREDICT_TOKEN"}
    open_container = by_kind(rendered("mining-endpoint", {"predictToken": {"required": False}}))["Deployment"][
        "spec"]["template"]["spec"]["containers"][0]
    assert "MINING_PREDICT_TOKEN" not in {e["name"] for e in open_container["env"]}
    unknown = {name for name in env if name.startswith("MINING_")} - set(settings.DEFAULTS) - {"MINING_ENDPOINT_REPLICA", "MINING_PREDICT_TOKEN"}
    assert not unknown, f"the chart sets settings the platform does not read: {unknown}"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = pod["metadata"]["labels"]
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    fixed = by_kind(rendered("mining-endpoint", {"autoscaling": {"enabled": False}, "replicaCount": 4}))
    assert "HorizontalPodAutoscaler" not in fixed and fixed["Deployment"]["spec"]["replicas"] == 4


def test_the_endpoint_chart_gets_every_replica_scraped():
    pod = by_kind(rendered("mining-endpoint", {}))["Deployment"]["spec"]["template"]["metadata"]
    assert pod["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                                  "prometheus.io/path": "/metrics"}
    assert "ServiceMonitor" not in by_kind(rendered("mining-endpoint", {}))
    operator = by_kind(rendered("mining-endpoint", {"metrics": {"scrapeAnnotations": False, "serviceMonitor": {
        "enabled": True, "labels": {"release": "prometheus"}}}}))
    assert "annotations" not in operator["Deployment"]["spec"]["template"]["metadata"]
    monitor = operator["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    service = operator["Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert service["spec"]["ports"][0]["name"] == "http"


def test_the_mlflow_chart_keeps_its_secrets_in_a_secret_and_accepts_its_service_names():
    kinds = by_kind(rendered("mlflow", {}, release="mlflow"))
    [container] = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"] + container["args"])
    assert '--backend-store-uri "$MLFLOW_BACKEND_STORE_URI"' in command and "--serve-artifacts" in command
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow"}}]
    hosts = {e["name"]: e.get("value") for e in container["env"]}["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    # The platform's MLFLOW_TRACKING_URI in the other charts names the Service: MLflow must accept that Host.
    assert "mlflow:*" in hosts and "mlflow.mining.svc.cluster.local:*" in hosts


def test_the_documented_mlflow_backend_uri_names_a_driver_the_image_has():
    """MLflow opens its backend store through SQLAlchemy; a URI whose driver the image lacks fails every start."""
    documented = [m.group(1) for text in ((DEPLOY / "charts" / "mlflow" / "values.yaml").read_text(),
                                          (REPO / "docs" / "production.md").read_text())
                  for m in re.finditer(r"(postgresql[+\w]*://)\S+@", text)]
    assert documented, "the mlflow values and the README document MLFLOW_BACKEND_STORE_URI"
    for scheme in set(documented):
        # What `mlflow server --backend-store-uri` calls; creating the engine imports the driver (connects to nothing).
        create_sqlalchemy_engine(f"{scheme}mlflow:secret@mlflow-db:5432/mlflow")
    with pytest.raises(ModuleNotFoundError):  # the check can fail: psycopg 3 is not in the image
        create_sqlalchemy_engine("postgresql://mlflow:secret@mlflow-db:5432/mlflow")


def instance_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "dagster" / "dagster.yaml").read_text())


def values_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "dagster" / "values.yaml").read_text())


def test_the_production_instance_loads_under_dagsters_schema(monkeypatch, tmp_path):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "DAGSTER_K8S_NAMESPACE",
                 "DAGSTER_K8S_INSTANCE_CONFIG_MAP", "DAGSTER_K8S_SERVICE_ACCOUNT"):
        monkeypatch.setenv(name, "x")
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster" / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's schema, and its concurrency rules
    for configured, cls in ((config["run_launcher"], K8sRunLauncher),
                            ({"postgres_db": config["storage"]["postgres"]["postgres_db"]}, DagsterPostgresStorage)):
        result = process_config(convert_potential_field(cls.config_type()).config_type, configured.get("config",
                                                                                                       configured))
        assert result.success, [error.message for error in result.errors]
    # The storage's URL names a driver this install has: creating the engine imports it (and connects to nothing).
    sqlalchemy.create_engine(pg_url_from_config(result.value))
    assert config["run_launcher"]["module"] == "dagster_k8s" and config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 50
    assert config["run_monitoring"]["enabled"] is True
    # Step logs outlive the run pods: the S3 compute log manager, its config valid under its own schema.
    logs = config["compute_logs"]
    assert (logs["module"], logs["class"]) == ("dagster_aws.s3.compute_log_manager", "S3ComputeLogManager")
    result = process_config(convert_potential_field(S3ComputeLogManager.config_type()).config_type, logs["config"])
    assert result.success, [error.message for error in result.errors]


def test_a_misconfigured_instance_is_caught(tmp_path):
    """The check above can fail: a misspelt key and an incompatible concurrency setting are refused."""
    broken = instance_yaml()
    broken["run_monitoring"]["start_timeout"] = 300
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(Exception, match="start_timeout"):
        dagster_instance_config(str(tmp_path))
    launcher = dict(instance_yaml()["run_launcher"]["config"], job_image_pull_policy="Always")
    result = process_config(convert_potential_field(K8sRunLauncher.config_type()).config_type, launcher)
    assert not result.success


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def test_the_chart_values_say_what_the_production_instance_says():
    values, instance = values_yaml(), instance_yaml()
    runs, pools_config = instance["concurrency"]["runs"], instance["concurrency"]["pools"]
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["runs"] == {"maxConcurrentRuns": runs["max_concurrent_runs"],
                                             "tagConcurrencyLimits": runs["tag_concurrency_limits"]}
    assert values["concurrency"]["pools"] == {camel(key): value for key, value in pools_config.items()}
    assert values["dagsterDaemon"]["runMonitoring"] == {camel(k): v for k, v in instance["run_monitoring"].items()}
    assert values["additionalInstanceConfig"]["run_retries"] == instance["run_retries"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == instance["compute_logs"]["class"]
    assert values["computeLogManager"]["config"]["s3ComputeLogManager"] == {
        camel(key): value for key, value in instance["compute_logs"]["config"].items()}
    launcher, k8s = instance["run_launcher"]["config"], values["runLauncher"]["config"]["k8sRunLauncher"]
    assert k8s["runK8sConfig"]["containerConfig"] == launcher["run_k8s_config"]["container_config"]
    assert k8s["loadInclusterConfig"] is launcher["load_incluster_config"] is True
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued == {camel(key): value for key, value in instance["run_coordinator"]["config"].items()}
    # Per project: a limit on the code location tag Dagster puts on every run it launches.
    [per_project] = runs["tag_concurrency_limits"]
    assert per_project["key"] == "dagster/code_location" and per_project["value"] == {"applyLimitPerUniqueValue": True}
    assert 0 < per_project["limit"] < runs["max_concurrent_runs"]
    assert pools_config["default_limit"] >= 1 and pools.MONGODB  # the pool the MongoDB-heavy steps claim
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    # The driver the image has: SQLAlchemy 2.1 maps a bare `postgresql` to psycopg 3, which it lacks.
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"] \
        == "postgresql+psycopg2"


def test_every_project_has_its_own_code_location_and_secret():
    deployments = values_yaml()["dagster-user-deployments"]["deployments"]
    projects = project_names(REPO / "projects")
    assert sorted(d["name"] for d in deployments) == sorted(projects)
    for deployment in deployments:
        name = deployment["name"]
        args = deployment["dagsterApiGrpcArgs"]
        module, attribute = args[args.index("--module-name") + 1], args[args.index("--attribute") + 1]
        assert (module, attribute) == ("sensors.definitions", name)
        assert getattr(definitions, attribute).resolve_asset_graph()  # the attribute the code server loads exists
        assert deployment["envSecrets"] == [{"name": f"mining-project-{name}"}]
        assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
        env = {e["name"]: e["value"] for e in deployment["env"]}
        assert env["MINING_PROJECTS_DIR"] == "/app/projects"  # where the Dockerfile puts the projects
        assert set(env) <= set(settings.DEFAULTS), set(env) - set(settings.DEFAULTS)


def test_the_image_installs_exactly_what_ci_installs():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    [image_install] = re.findall(r"pip install (.*)", dockerfile)
    [ci_install] = [line for line in re.findall(r"pip install (.*)", makefile) if "constraints.txt" in line]
    assert "-c constraints.txt" in image_install and "-c constraints.txt" in ci_install
    assert '".[production]"' in image_install and "production" in ci_install  # CI tests the production extra too
    pins = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    production = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["production"]
    for requirement in production:
        name, version = requirement.split("==")
        assert pins[name.lower()] == version, f"{requirement} is not what constraints.txt pins"
    assert re.search(r"^USER 10001", dockerfile, re.M) and "COPY projects" in dockerfile


def test_a_misspelt_manifest_field_is_caught():
    """The Kubernetes check can fail: a typo in a probe is refused in strict mode."""
    deployment = by_kind(rendered("mining-endpoint", {}))["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[-1], strict=True)
