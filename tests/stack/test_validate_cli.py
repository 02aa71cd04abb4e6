"""`mining-platform validate PATH…`: the pre-flight checks, on the command line."""



from mining_platform.spec.feature_files import load_feature_definition
from mining_platform.store.versions import register
from tests.fixtures.validate import edit, projects, run  # noqa: F401 (projects: a fixture)


def test_versions_are_compared_with_the_registry(capsys, projects, mongo, monkeypatch, churn_project):
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    path = projects / "churn/features/module_preferences.yaml"
    register(mongo.project_db("churn"), load_feature_definition(path, churn_project), project="churn")
    code, out, err = run(capsys, projects)
    assert code == 0, err
    assert "versions agree with feature_pipelines" in out

    edit(path, description="Edited without a version bump.")
    code, _, err = run(capsys, projects)
    assert code == 1
    assert "module_preferences version 2 differs from the registered version 2" in err
    assert "bump `version`" in err


def test_a_connection_without_a_user_is_refused_with_a_way_out(capsys, projects, mongo, monkeypatch):
    anonymous = mongo.uri.split("://")[0] + "://" + mongo.uri.split("@")[1]
    monkeypatch.setenv("MINING_MONGO_URI", anonymous)
    code, _, err = run(capsys, projects)
    assert code == 2
    assert "MongoDB refused" in err and "mining-platform mongo-uri" in err


def test_a_source_whose_timestamp_holds_no_dates_is_refused(capsys, projects, mongo, monkeypatch):
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    code, out, err = run(capsys, projects / "churn")
    assert code == 0, err
    assert "ok  source user_events (" in out and "holds no events yet" in out
    mongo.demo_db("churn")["user_events"].insert_one({"user_id": 1, "timestamp": "2024-01-05 10:00"})
    code, _, err = run(capsys, projects / "churn")
    assert code == 1 and "sources.user_events.timestamp" in err and "no document has a date in 'timestamp'" in err
    assert "'2024-01-05 10:00'" in err
