"""`mining-platform validate --offline`: the checks that need no server."""

import datetime as dt

import yaml

from tests.conftest import REPO
from tests.fixtures.validate import edit, projects, run  # noqa: F401 (projects: a fixture)


def test_the_repository_projects_are_valid(capsys):
    code, out, err = run(capsys, REPO / "projects", "--offline")
    assert code == 0, err
    assert "ok  " + str(REPO / "projects/churn/features/user_activity.yaml") in out
    assert "ok  " + str(REPO / "projects/churn/labels/churned.yaml") + "  (churned v1" in out
    assert "ok  " + str(REPO / "projects/spend/labels/spend_next_14d.yaml") in out
    assert "7 files valid" in out


def test_a_bad_definition_fails_with_all_its_problems(capsys, projects):
    path = projects / "spend/features/purchase_history.yaml"
    content = yaml.safe_load(path.read_text())
    content["post"].append({"$out": "copy"})
    content["filter"] = {"$where": "true"}
    del content["owner"]
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    code, out, err = run(capsys, path, "--offline")
    assert code == 1
    assert f"{path}: 4 problems" in err  # the $out stage is refused as a post stage and as a write
    assert "owner: missing required key" in err and "$where runs JavaScript" in err and "post stage 2: only" in err
    assert "post: stage 2 ($out): $out is not allowed" in err


def test_a_bad_project_file_is_reported_first(capsys, projects):
    edit(projects / "churn/project.yaml", horizon=3)
    code, _, err = run(capsys, projects / "churn", "--offline")
    assert code == 1 and "project.yaml: invalid project file" in err and "horizon: unknown key" in err


def test_an_unknown_path_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path, "--offline")
    assert code == 1 and "not a projects folder" in err


def test_an_unreachable_registry_is_an_error_not_a_pass(capsys, monkeypatch):
    from mining_platform.tools.embedded_mongo import free_port, loopback_uri

    monkeypatch.setenv("MINING_MONGO_URI", loopback_uri(free_port()))
    code, _, err = run(capsys, REPO / "projects", "--mongo-timeout", "0.5")
    assert code == 2 and "cannot reach MongoDB" in err and "--offline" in err


def test_a_label_named_like_a_feature_is_refused(capsys, projects):
    edit(projects / "churn/project.yaml", label="events_30d")
    label = yaml.safe_load((projects / "churn/labels/churned.yaml").read_text())
    (projects / "churn/labels/events_30d.yaml").write_text(yaml.safe_dump({**label, "name": "events_30d"}))
    code, out, err = run(capsys, projects / "churn", "--offline")
    assert code == 1
    assert "project.yaml: project churn: label 'events_30d' is a feature of user_activity" in err


def test_a_missing_or_unsafe_label_definition_is_refused(capsys, projects):
    edit(projects / "churn/project.yaml", label="returns")
    code, _, err = run(capsys, projects / "churn", "--offline")
    assert code == 1 and "labels/returns.yaml: 1 problem" in err and "project.yaml names label 'returns'" in err

    path = projects / "churn/labels/churned.yaml"
    edit(projects / "churn/project.yaml", label="churned")
    label = yaml.safe_load(path.read_text())
    label["pipeline"].append({"$merge": {"into": "samples_churn"}})
    label["pipeline"][0]["$match"]["timestamp"]["$lt"] = {"$param": "window_start"}
    label["default"] = 2
    path.write_text(yaml.safe_dump(label))
    code, _, err = run(capsys, path, "--offline")
    assert code == 1 and f"{path}: 2 problems" in err
    assert "stage 3 ($merge): $merge is not allowed" in err
    assert "unknown $param 'window_start'" in err and "(known: as_of, horizon_end)" in err
    label["pipeline"] = label["pipeline"][:2]
    label["pipeline"][0]["$match"]["timestamp"]["$lt"] = {"$param": "horizon_end"}
    path.write_text(yaml.safe_dump(label))
    code, _, err = run(capsys, path, "--offline")
    assert code == 1 and "default: a binary label is 0 or 1 (or null), got 2" in err


def test_a_non_utf8_feature_file_is_reported_under_its_own_name(capsys, projects):
    path = projects / "churn/features/module_preferences.yaml"
    path.write_bytes(path.read_bytes().replace(b"Where each user", b"O\xf9 each user"))
    code, _, err = run(capsys, projects / "churn", "--offline")
    assert code == 1
    assert f"{path}: 1 problem:" in err and "not UTF-8 text (byte 0xf9" in err and "project.yaml" not in err


def test_validate_applies_the_expansion_bound_a_run_applies(capsys, projects):
    """`$densify` bounds that are explicit but, once a partition's parameters are substituted, span more steps than
    a run allows: refused by validate (offline), naming the partition, not first at run time."""
    path = projects / "churn/features/hourly.yaml"
    hourly = {
        "name": "hourly", "version": 1, "owner": "team@example.com", "description": "Events per user, densified.",
        "source": "user_events", "window_days": 7,
        "pipeline": [
            {"$match": {"timestamp": {"$gte": {"$param": "window_start"}, "$lt": {"$param": "as_of"}}}},
            {"$densify": {"field": "timestamp", "range": {"step": 1, "unit": "second",
                                                          "bounds": [{"$param": "window_start"},
                                                                     {"$param": "as_of"}]}}},
            {"$group": {"_id": "$user_id", "events": {"$sum": 1}}},
        ],
        "features": {"events": {"type": "int"}},
    }
    path.write_text(yaml.safe_dump(hourly, sort_keys=False))
    code, _, err = run(capsys, path, "--offline")
    assert code == 1
    assert "stage 2 ($densify): its range spans 604,801 steps; at most 100,000 steps" in err
    assert "(partition 2024-01-01, as a run substitutes its parameters)" in err
    # From a literal day to as_of: fine at the first partition, too wide at the last one.
    hourly["pipeline"][1]["$densify"]["range"] = {"step": 1, "unit": "minute",
                                                  "bounds": [dt.date(2024, 1, 1), {"$param": "as_of"}]}
    path.write_text(yaml.safe_dump(hourly, sort_keys=False))
    code, _, err = run(capsys, path, "--offline")
    assert code == 1 and "partition 2024-03-31" in err and "partition 2024-01-01" not in err
    hourly["pipeline"][1]["$densify"]["range"]["unit"] = "day"
    path.write_text(yaml.safe_dump(hourly, sort_keys=False))
    assert run(capsys, path, "--offline")[0] == 0


def test_validate_applies_the_expansion_bound_to_a_label(capsys, projects):
    path = projects / "churn/labels/churned.yaml"
    label = yaml.safe_load(path.read_text())
    label["pipeline"].insert(1, {"$densify": {"field": "timestamp", "range": {
        "step": 1, "unit": "millisecond", "bounds": [{"$param": "as_of"}, {"$param": "horizon_end"}]}}})
    path.write_text(yaml.safe_dump(label, sort_keys=False))
    code, _, err = run(capsys, projects / "churn", "--offline")
    assert code == 1 and f"{path}" in err and "($densify): its range spans" in err
