"""Projects that cannot touch each other: a namespace per project, least-privilege MongoDB users enforced by
the (authenticating) embedded server, and the cross-project takeover that once deleted churn's features."""

import copy
import uuid

import dagster as dg
import pytest
import yaml
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from assets.features import build_feature_asset
from mining_platform.access import credentials
from mining_platform.access.provision import ENDPOINT_USER, project_user, provision
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import (
    FEATURE_PIPELINES,
    PREDICTION_LOG,
    PROMOTIONS,
    SERVING_DESIRED,
    SERVING_REPLICAS,
    demo_database,
    endpoint_database,
    project_database,
)
from mining_platform.store import markers
from mining_platform.tools import cli
from resources import MongoResource
from tests.conftest import REPO
from tests.fixtures.definitions import AS_OF, COUNTS, EVENTS, PARTITION
from tests.fixtures.mongo import as_resource

UNAUTHORIZED = 13


def project_named(churn_project, name, *, collection="user_events", demo=True):
    source = churn_project.sources["user_events"].model_copy(
        update={"collection": collection, "demo_of": name if demo else None})
    demo_block = churn_project.demo.model_copy(update={"source": "user_events"}) if demo else None
    return churn_project.model_copy(update={"name": name, "sources": {"user_events": source}, "demo": demo_block})


def refused(action) -> bool:
    """True when the server refuses `action` for lack of privileges."""
    try:
        action()
    except OperationFailure as exc:
        assert exc.code == UNAUTHORIZED, exc
        return True
    return False


@pytest.fixture
def two_projects(mongo, churn_project):
    """Projects `alpha_*` (demo source) and `beta_*` (a plain source) with their users, and a client per user."""
    suffix = uuid.uuid4().hex[:6]
    alpha = project_named(churn_project, f"alpha_{suffix}", collection="alpha_events")
    beta = project_named(churn_project, f"beta_{suffix}", collection="beta_events", demo=False)
    mongo.demo_db(alpha.name)["alpha_events"].insert_many([dict(e) for e in EVENTS])
    mongo.db()["beta_events"].insert_many([dict(e) for e in EVENTS])
    done = provision(mongo.client(), platform=mongo.database, projects=[alpha, beta], logins={"projects": {}})
    clients = {
        who: MongoClient(credentials.with_login(mongo.uri, login), serverSelectionTimeoutMS=5000, tz_aware=True)
        for who, login in [("alpha", done.logins["projects"][alpha.name]),
                           ("beta", done.logins["projects"][beta.name]),
                           ("endpoint", done.logins["endpoint"])]
    }
    yield alpha, beta, done, clients
    for client in clients.values():
        client.close()


def test_a_project_user_reads_its_sources_writes_its_namespace_and_nothing_else(mongo, two_projects):
    alpha, beta, _, clients = two_projects
    beta_client = clients["beta"]
    platform = beta_client[mongo.database]
    own = beta_client[project_database(mongo.database, beta.name)]
    other = beta_client[project_database(mongo.database, alpha.name)]

    assert platform["beta_events"].count_documents({}) == len(EVENTS)  # its source: readable
    own["features_x"].insert_one({"_id": 1})  # its namespace: writable
    assert own["features_x"].count_documents({}) == 1
    mongo.project_db(alpha.name)["features_x"].insert_one({"_id": "alpha's"})

    assert refused(lambda: platform["beta_events"].insert_one({"forged": True}))  # its source: never written
    assert refused(lambda: platform["beta_events"].delete_many({}))
    assert refused(lambda: other["features_x"].find_one())  # another project's namespace: not even read
    assert refused(lambda: other["features_x"].insert_one({}))
    assert refused(lambda: list(platform["beta_events"].aggregate(  # nor written through a pipeline
        [{"$merge": {"into": {"db": other.name, "coll": "features_x"}}}])))
    assert refused(lambda: beta_client.admin.command("createUser", "intruder", pwd="x", roles=[]))
    # Nothing of it happened: the source and alpha's data are as they were.
    assert mongo.db()["beta_events"].count_documents({}) == len(EVENTS)
    assert list(mongo.project_db(alpha.name)["features_x"].find()) == [{"_id": "alpha's"}]


def test_a_demo_project_writes_its_demo_database_and_no_other_projects_source(mongo, two_projects):
    alpha, beta, _, clients = two_projects
    demo = clients["alpha"][demo_database(mongo.database, alpha.name)]
    demo["alpha_events"].insert_one({"demo": True})
    demo["demo_collections"].insert_one({"_id": f"{demo.name}.alpha_events", "project": alpha.name})
    assert not refused(lambda: demo["alpha_events"].delete_many({"demo": True}))
    # The platform database (where beta's real events and imports live) is not written, on the embedded server
    # too, where a collection's grant would cover its whole database; nor is beta's namespace or another demo.
    platform = clients["alpha"][mongo.database]
    assert refused(lambda: platform["beta_events"].insert_one({"forged": True}))
    assert refused(lambda: platform["beta_events"].delete_many({}))
    assert refused(lambda: platform["demo_collections"].insert_one({"_id": "x"}))
    assert refused(lambda: platform["beta_events"].find_one())  # not its source: not even read
    assert refused(lambda: clients["alpha"][demo_database(mongo.database, beta.name)]["x"].insert_one({}))
    assert mongo.db()["beta_events"].count_documents({}) == len(EVENTS)
    # beta reads nothing of alpha's demo database it did not declare.
    assert refused(lambda: clients["beta"][demo.name]["alpha_events"].find_one())


def test_a_project_reads_another_projects_demo_events_and_writes_none(mongo, churn_project):
    """spend's case: a source `demo_of: <project>` is read in that project's demo database, never written."""
    suffix = uuid.uuid4().hex[:6]
    owner = project_named(churn_project, f"gen_{suffix}", collection="shared_events")
    reader_source = churn_project.sources["user_events"].model_copy(
        update={"collection": "shared_events", "demo_of": owner.name})
    reader = churn_project.model_copy(update={"name": f"reader_{suffix}", "sources": {"user_events": reader_source},
                                              "demo": None})
    mongo.demo_db(owner.name)["shared_events"].insert_many([dict(e) for e in EVENTS])
    done = provision(mongo.client(), platform=mongo.database, projects=[owner, reader], logins={"projects": {}})
    with MongoClient(credentials.with_login(mongo.uri, done.logins["projects"][reader.name]),
                     serverSelectionTimeoutMS=5000) as client:
        shared = client[demo_database(mongo.database, owner.name)]["shared_events"]
        assert shared.count_documents({}) == len(EVENTS)
        assert refused(lambda: shared.insert_one({"forged": True}))
        assert refused(lambda: shared.delete_many({}))
    assert mongo.demo_db(owner.name)["shared_events"].count_documents({}) == len(EVENTS)


def test_the_endpoint_reads_namespaces_and_writes_only_its_own_databases(mongo, two_projects):
    alpha, beta, _, clients = two_projects
    endpoint = clients["endpoint"]
    namespace = endpoint[project_database(mongo.database, alpha.name)]
    written = endpoint[endpoint_database(mongo.database, alpha.name)]
    admin_namespace = mongo.project_db(alpha.name)
    admin_namespace["feature_partitions"].insert_one({"_id": "m"})
    admin_namespace[SERVING_DESIRED].insert_one({"_id": "champion", "version": "1"})
    assert namespace["feature_partitions"].find_one() == {"_id": "m"}
    # Its replicas follow the serving records (a change stream, closed again: killCursors) and write the prediction
    # log and their heartbeats in the endpoint database.
    with namespace[SERVING_DESIRED].watch(max_await_time_ms=200) as stream:
        admin_namespace[SERVING_DESIRED].replace_one({"_id": "champion"}, {"version": "2"})
        assert stream.try_next()["fullDocument"]["version"] == "2"
    written[PREDICTION_LOG].insert_one({"project": alpha.name})
    written[PREDICTION_LOG].create_index("time", expireAfterSeconds=60)
    written[SERVING_REPLICAS].replace_one({"_id": "pod-a"}, {"at": 1}, upsert=True)
    written[SERVING_REPLICAS].delete_one({"_id": "pod-a"})
    list(written[PREDICTION_LOG].find().batch_size(1).limit(5))

    # Nothing that decides what is served can be written by it, on the embedded server too (every grant is a
    # database's): the serving record, markers, the registry, run records, the promotion audit, features.
    for collection in (SERVING_DESIRED, "feature_partitions", FEATURE_PIPELINES, "pipeline_runs", PROMOTIONS,
                       "features_x", PREDICTION_LOG, SERVING_REPLICAS):
        assert refused(lambda: namespace[collection].insert_one({"_id": "forged"})), collection
        assert refused(lambda: namespace[collection].update_one({}, {"$set": {"version": "3"}}, upsert=True)), collection
        assert refused(lambda: namespace[collection].delete_many({})), collection
    assert refused(lambda: endpoint[mongo.database]["beta_events"].find_one())  # no source data
    assert refused(lambda: endpoint[mongo.database]["beta_events"].insert_one({}))
    assert refused(lambda: endpoint[demo_database(mongo.database, alpha.name)]["alpha_events"].insert_one({}))
    assert refused(lambda: endpoint["elsewhere"]["x"].insert_one({}))
    assert refused(lambda: endpoint[endpoint_database(mongo.database, "unprovisioned")]["x"].insert_one({}))
    assert admin_namespace[SERVING_DESIRED].find_one() == {"_id": "champion", "version": "2"}
    assert admin_namespace[PROMOTIONS].count_documents({}) == 0

    # A project reads what the endpoint wrote for it (drift, performance, convergence), writes none of it, and
    # reads nothing the endpoint wrote for another project.
    beta_client = clients["beta"]
    mongo.endpoint_db(beta.name)[PREDICTION_LOG].insert_one({"project": beta.name})
    assert beta_client[endpoint_database(mongo.database, beta.name)][PREDICTION_LOG].count_documents({}) == 1
    assert refused(lambda: beta_client[endpoint_database(mongo.database, beta.name)][PREDICTION_LOG].insert_one({}))
    assert refused(lambda: beta_client[endpoint_database(mongo.database, beta.name)][SERVING_REPLICAS].insert_one({}))
    assert refused(lambda: beta_client[endpoint_database(mongo.database, alpha.name)][PREDICTION_LOG].find_one())


def test_provision_skips_a_project_that_names_another_projects_data_and_provisions_the_rest(
        mongo, tmp_path, monkeypatch, capsys):
    """The takeover through `provision`: a project file naming churn's namespace (or any platform collection) as
    a source is refused when it is loaded; it gets no user and no privileges, and churn is provisioned as usual."""
    projects = tmp_path / "projects"
    churn = yaml.safe_load((REPO / "projects/churn/project.yaml").read_text())
    for name, source in [("churn", None),
                         ("intruder", {"collection": "user_activity", "database": f"{mongo.database}_churn"}),
                         ("thief", {"collection": "tiles_user_activity", "database": "elsewhere"})]:
        config = {**copy.deepcopy(churn), "name": name}
        if source:
            config.pop("demo")
            config["sources"]["user_events"].update(source)
        (projects / name).mkdir(parents=True)
        (projects / name / "project.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    assert cli.main(["provision"]) == 1
    out, err = capsys.readouterr()
    assert "project churn: role" in out
    assert ("project intruder skipped, nothing granted" in err
            and f"'{mongo.database}_churn' is named like a project's namespace" in err), err
    assert "project thief skipped" in err and "'tiles_user_activity' is a platform collection" in err
    stored = credentials.load()
    assert set(stored["projects"]) == {"churn"}
    admin = mongo.client().admin
    for name in ("intruder", "thief"):
        assert not admin.command("usersInfo", {"user": project_user(name), "db": "admin"})["users"]
    endpoint = admin.command("rolesInfo", {"role": ENDPOINT_USER, "db": "admin"}, showPrivileges=True)["roles"][0]
    assert {p["resource"]["db"] for p in endpoint["privileges"]} == {
        project_database(mongo.database, "churn"), endpoint_database(mongo.database, "churn")}


def test_provision_grants_nothing_to_a_project_built_past_the_loader(mongo, churn_project):
    """A ProjectConfig made in code (model_copy skips validation) is checked again: its earlier role is emptied."""
    good = project_named(churn_project, f"gamma_{uuid.uuid4().hex[:6]}", demo=False)
    done = provision(mongo.client(), platform=mongo.database, projects=[good], logins={"projects": {}})
    source = good.sources["user_events"].model_copy(update={"database": f"{mongo.database}_churn", "demo_of": None})
    bad = good.model_copy(update={"sources": {"user_events": source}})
    again = provision(mongo.client(), platform=mongo.database, projects=[bad], logins=done.logins)
    assert good.name in again.skipped and "named like a project's namespace" in again.skipped[good.name]
    role = mongo.client().admin.command("rolesInfo", {"role": project_user(good.name), "db": "admin"},
                                        showPrivileges=True)["roles"][0]
    assert role["privileges"] == [] and role["roles"] == []
    with MongoClient(credentials.with_login(mongo.uri, done.logins["projects"][good.name]),
                     serverSelectionTimeoutMS=5000) as client:
        assert refused(lambda: client[project_database(mongo.database, "churn")]["features_x"].find_one())
        assert refused(lambda: client[project_database(mongo.database, good.name)]["x"].insert_one({}))


def test_a_project_builds_its_features_with_its_own_least_privileged_user(mongo, two_projects):
    _, beta, done, _ = two_projects
    as_beta = MongoResource(uri=credentials.with_login(mongo.uri, done.logins["projects"][beta.name]),
                            database=mongo.database)
    definition = FeatureDefinition.model_validate(copy.deepcopy(COUNTS))
    report = run_feature_pipeline(
        db=as_beta.project_db(beta.name), analytics=as_beta.analytics_project_db(beta.name),
        sources=as_beta.analytics_db(), project=beta, definition=definition, partitions=[(PARTITION, AS_OF)],
        dagster_run_id=None, max_time_ms=60_000)
    assert not report.failed, [o.error for o in report.failed]
    assert len(markers.read_committed(mongo.project_db(beta.name), definition, AS_OF)) == 2


def test_provisioning_again_keeps_passwords_and_follows_the_project_files(mongo, two_projects):
    alpha, beta, done, _ = two_projects
    again = provision(mongo.client(), platform=mongo.database, projects=[alpha, beta], logins=done.logins)
    assert again.logins == done.logins
    # beta reads another collection now: its role follows on the next run.
    moved = beta.model_copy(update={"sources": {"user_events": beta.sources["user_events"].model_copy(
        update={"collection": "beta_events_v2"})}})
    provision(mongo.client(), platform=mongo.database, projects=[moved], logins=done.logins)
    role = mongo.client().admin.command("rolesInfo", {"role": project_user(beta.name), "db": "admin"},
                                        showPrivileges=True)["roles"][0]
    assert {"db": mongo.database, "collection": "beta_events_v2"} in [p["resource"] for p in role["privileges"]]
    assert {"db": mongo.database, "collection": "beta_events"} not in [p["resource"] for p in role["privileges"]]
    rotated = provision(mongo.client(), platform=mongo.database, projects=[alpha], logins=done.logins, rotate=True)
    assert rotated.logins["projects"][alpha.name].password != done.logins["projects"][alpha.name].password
    assert rotated.logins["endpoint"].user == ENDPOINT_USER


def test_provision_and_mongo_uri_commands(mongo, tmp_path, monkeypatch, capsys):
    projects = tmp_path / "projects"
    (projects / "churn").mkdir(parents=True)
    (projects / "churn" / "project.yaml").write_text((REPO / "projects/churn/project.yaml").read_text())
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)  # the administrator's
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    assert cli.main(["provision"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "project churn: role" in out and "endpoint: role" in out
    stored = credentials.load()
    assert stored["projects"]["churn"].user == project_user("churn")
    assert stored["projects"]["churn"].password not in out  # passwords are never printed by provision
    assert (credentials.credentials_path().stat().st_mode & 0o777) == 0o600

    assert cli.main(["mongo-uri", "--as", "churn"]) == 0
    uri = capsys.readouterr().out.strip()
    assert uri.startswith(f"mongodb://{project_user('churn')}:") and "authSource=admin" in uri
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        assert client[project_database(mongo.database, "churn")]["probe"].insert_one({}).acknowledged
        assert refused(lambda: client[project_database(mongo.database, "spend")]["probe"].find_one())
    assert cli.main(["mongo-uri", "--as", "nobody"]) == 1
    assert "no MongoDB credentials for 'nobody'" in capsys.readouterr().err


def test_the_same_feature_set_in_two_projects_never_meets(mongo, churn_project):
    """The attack that once re-pointed churn's published partition and deleted its documents: a second project
    with its own `event_counts` at the same version and other content materialises the same day."""
    events = mongo.db()["user_events"]
    events.insert_many([dict(e) for e in EVENTS])
    churn = project_named(churn_project, "churn", demo=False)
    rival = project_named(churn_project, "rival", demo=False)
    ours = FeatureDefinition.model_validate(copy.deepcopy(COUNTS))
    theirs_raw = copy.deepcopy(COUNTS)
    theirs_raw["pipeline"][1]["$group"]["events"] = {"$sum": 100}
    theirs = FeatureDefinition.model_validate(theirs_raw)

    def materialise(project, definition):
        result = dg.materialize([build_feature_asset(project, definition)], resources={"mongo": as_resource(mongo)},
                                partition_key=PARTITION, raise_on_error=False)
        assert result.success

    materialise(churn, ours)
    churn_db = mongo.project_db("churn")
    before = markers.committed_partition(churn_db, ours.name, AS_OF)
    documents = sorted(map(str, churn_db[ours.target].find()))
    materialise(rival, theirs)  # its own version 1 of the same name: accepted, in its own namespace

    assert markers.committed_partition(churn_db, ours.name, AS_OF) == before
    assert sorted(map(str, churn_db[ours.target].find())) == documents
    assert {d["events"] for d in markers.read_committed(churn_db, ours, AS_OF)} == {3, 1}
    rival_db = mongo.project_db("rival")
    assert {d["events"] for d in markers.read_committed(rival_db, theirs, AS_OF)} == {300, 100}
    assert churn_db[FEATURE_PIPELINES].find_one({"name": ours.name})["hash"] == ours.content_hash
    assert rival_db[FEATURE_PIPELINES].find_one({"name": ours.name})["hash"] == theirs.content_hash


def test_a_wrong_password_is_named_and_a_uri_without_a_user_gets_the_stored_login(mongo, monkeypatch, capsys):
    from pymongo import uri_parser

    monkeypatch.setenv("MINING_MONGO_URI", credentials.with_login(mongo.uri, credentials.Login("nobody", "wrong")))
    assert cli.main(["provision"]) == 2
    assert "authentication failed for user 'nobody'" in capsys.readouterr().err
    # The README's way of moving the dev stack's port: a URI without a user, and the stack's stored logins.
    parsed = uri_parser.parse_uri(mongo.uri)
    host, port = parsed["nodelist"][0]
    admin = credentials.Login(parsed["username"], parsed["password"])
    credentials.save({credentials.ADMIN: admin, "projects": {}})
    monkeypatch.setenv("MINING_MONGO_URI", f"mongodb://{host}:{port}/?directConnection=true")
    assert uri_parser.parse_uri(credentials.connection_string())["username"] == admin.user
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(REPO / "projects"))
    assert cli.main(["provision"]) == 0, capsys.readouterr().err
