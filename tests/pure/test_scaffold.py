"""`mining-platform new`: a project that loads, or nothing written."""

import datetime as dt

import pytest
import yaml

from mining_platform.spec import load_spec
from mining_platform.tools.scaffold import ScaffoldFailed, scaffold

pytestmark = pytest.mark.fast
START = dt.date(2024, 3, 1)


def make(tmp_path, name, **changes):
    options = {"collection": "orders", "entity": "customer", "timestamp": "ordered_at", "start_date": START,
               "workspace": tmp_path / "workspace.yaml", **changes}
    return scaffold(tmp_path / "projects", name, **options)


def test_two_scaffolded_projects_load_and_never_share_a_registry_name(tmp_path):
    (tmp_path / "projects").mkdir()
    (tmp_path / "workspace.yaml").write_text("load_from:\n")
    shop, spend = make(tmp_path, "shop"), make(tmp_path, "shop_spend", task="regression", database="sales")
    one, two = load_spec(shop.project_dir), load_spec(spend.project_dir)
    assert (one.task, two.task) == ("binary", "regression")
    assert two.project.sources["events"].database == "sales" and one.project.sources["events"].database is None
    assert one.project.start_date == START and one.entity == "customer"
    assert {d.name for d in one.definitions}.isdisjoint(d.name for d in two.definitions)
    assert one.label != two.label and one.project.model.name != two.project.model.name
    locations = yaml.safe_load((tmp_path / "workspace.yaml").read_text())["load_from"]
    assert [entry["python_module"]["attribute"] for entry in locations] == ["shop", "shop_spend"]


@pytest.mark.parametrize(("name", "changes", "problem"), [
    ("Shop", {}, "lowercase letters"),
    ("shop", {"entity": "customer.id"}, "--entity 'customer.id'"),
    ("shop", {"collection": "system.users"}, "system collection"),
    ("shop", {"timestamp": "$when"}, "timestamp"),
    ("load_spec", {}, "project name 'load_spec' is reserved"),
    ("settings", {}, "project name 'settings' is reserved"),
    ("s" * 48, {}, "at most 47 characters with MINING_MONGO_DB 'mining'"),
    ("shop", {"database": "mining_churn"}, "'mining_churn' is named like a project's namespace"),
    ("shop", {"database": "Admin"}, "'Admin' is one of MongoDB's own databases"),
    ("shop", {"collection": "tiles_user_activity"}, "'tiles_user_activity' is a platform collection"),
])
def test_bad_names_are_refused_before_anything_is_written(tmp_path, name, changes, problem):
    with pytest.raises(ScaffoldFailed, match=problem.replace("$", r"\$").replace(".", r"\.")):
        make(tmp_path, name, **changes)
    assert not (tmp_path / "projects").exists() or not any((tmp_path / "projects").iterdir())


def test_an_existing_project_or_location_is_left_alone(tmp_path):
    (tmp_path / "projects").mkdir()
    (tmp_path / "workspace.yaml").write_text("load_from:\n")
    made = make(tmp_path, "shop")
    before = {path: path.read_text() for path in made.files}
    with pytest.raises(ScaffoldFailed, match="already exists"):
        make(tmp_path, "shop", task="regression")
    assert {path: path.read_text() for path in made.files} == before
    (tmp_path / "workspace.yaml").write_text("load_from:\n  - python_module: {module_name: m, attribute: again}\n")
    with pytest.raises(ScaffoldFailed, match="already has a code location 'again'"):
        make(tmp_path, "again")
    assert not (tmp_path / "projects" / "again").exists()
