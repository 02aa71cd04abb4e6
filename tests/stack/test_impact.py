"""`mining-platform impact`: what a changed definition touches, named before anything runs."""

import shutil

import yaml

from mining_platform.registry import aliases
from mining_platform.registry.client import client as mlflow_client
from mining_platform.spec.feature_files import load_feature_definition
from mining_platform.store.versions import register
from mining_platform.tools import cli
from tests.conftest import REPO
from tests.fixtures.model_versions import register_synthetic_version


def test_impact_names_the_champion_trained_on_the_version_being_replaced(tmp_path, mongo, mlflow_resource, monkeypatch,
                                                                        capsys, churn_project):
    projects = tmp_path / "projects"
    shutil.copytree(REPO / "projects", projects)
    path = projects / "churn" / "features" / "user_activity.yaml"
    published = load_feature_definition(path, churn_project)
    register(mongo.project_db("churn"), published, project="churn")
    model_name = f"impact_{mongo.database}"
    project_file = projects / "churn" / "project.yaml"
    raw = yaml.safe_load(project_file.read_text())
    raw["model"]["name"] = model_name
    project_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    trained = {published.name: {"version": published.version, "hash": published.content_hash}}
    old, new = (register_synthetic_version(
        tracking_uri=mlflow_resource.tracking_uri, artifact_location=mlflow_resource.artifact_location,
        model_name=model_name, features=list(published.features), seed=seed, project="churn",
        trained_features=trained) for seed in (1, 2))
    aliases.promote_to_champion(mlflow_client(mlflow_resource.tracking_uri), model_name, new.version)
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_resource.tracking_uri)
    monkeypatch.setenv("MINING_ENDPOINT_URL", "http://127.0.0.1:9")  # no endpoint: served is simply unknown

    assert cli.main(["impact", str(path)]) == 0
    unchanged = capsys.readouterr().out
    assert "user_activity v3 (churn): unchanged" in unchanged

    content = yaml.safe_load(path.read_text())
    content["aggregations"]["events"]["windows_days"] = [7, 14, 30]
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    assert cli.main(["impact", str(path)]) == 0
    bumpless = capsys.readouterr().out
    assert "NEEDS A VERSION BUMP" in bumpless and "user_activity version 3 differs from the registered version 3" in bumpless

    content["version"] = 4
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    assert cli.main(["impact", str(path)]) == 0
    out = capsys.readouterr().out
    assert "user_activity v4 (churn): a new version" in out
    assert ("downstream: churn/tiles/user_activity, churn/features/user_activity, churn/samples, churn/model, "
            "churn/deployment, churn/drift_report, churn/predictions, churn/performance") in out
    assert f"model {model_name} v{new.version} trained on user_activity v3 ({published.content_hash[:12]}) " \
           f"(gate passed) [champion]" in out
    assert f"model {model_name} v{old.version} trained on user_activity v3" in out
    assert f"the champion (v{new.version}, trained on v3" in out and "answers entity requests with 409" in out
