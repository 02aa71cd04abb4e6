"""Feature definitions: loading, every refusal (with its message), hashing and $param substitution."""

import copy
import datetime as dt
import hashlib
import json

import pytest
import yaml

from mining_platform.spec.definition import FeatureDefinitionError
from mining_platform.spec.feature_files import load_feature_definition, load_feature_definitions
from mining_platform.spec.parameters import parameter_values, substitute
from mining_platform.spec.stages import expansion_problems
from tests.conftest import REPO

pytestmark = pytest.mark.fast

VALID = {
    "name": "event_counts",
    "version": 1,
    "description": "Events per user over three days.",
    "owner": "tests",
    "source": "user_events",
    "window_days": 3,
    "parameters": {"min_amount": 10.0},
    "pipeline": [
        {"$match": {"timestamp": {"$gte": {"$param": "window_start"}, "$lt": {"$param": "as_of"}}}},
        {"$group": {"_id": "$user_id", "events": {"$sum": 1}}},
    ],
    "features": {"events": {"type": "int", "min": 1}},
}


@pytest.fixture
def project_dir(tmp_path, churn_project):
    """A copy of the churn project with an empty features folder."""
    folder = tmp_path / "churn"
    (folder / "features").mkdir(parents=True)
    (folder / "project.yaml").write_text((REPO / "projects/churn/project.yaml").read_text())
    return folder


def write(project_dir, content, name="event_counts"):
    path = project_dir / "features" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def problems_of(project_dir, churn_project, content) -> str:
    with pytest.raises(FeatureDefinitionError) as caught:
        load_feature_definition(write(project_dir, content), churn_project)
    message = str(caught.value)
    assert message.startswith(str(project_dir / "features" / "event_counts.yaml"))
    return message


def with_stage(stage, at=1):
    content = copy.deepcopy(VALID)
    content["pipeline"].insert(at, stage)
    return content


def test_the_churn_definitions_load(churn_project):
    definitions = load_feature_definitions(REPO / "projects/churn", churn_project)
    assert [d.name for d in definitions] == ["module_preferences", "user_activity"]
    assert all(d.source == "user_events" and d.source in churn_project.sources and d.features for d in definitions)


def test_a_valid_definition_loads_with_typed_values(project_dir, churn_project):
    definition = load_feature_definition(write(project_dir, VALID), churn_project)
    assert definition.target == "features_event_counts"
    assert definition.features["events"].type.bson_types == ["int", "long"]
    assert len(definition.content_hash) == 64


def test_the_hash_follows_the_content_and_nothing_else(project_dir, churn_project):
    first = load_feature_definition(write(project_dir, VALID), churn_project).content_hash
    reordered = dict(reversed(list(VALID.items())))
    assert load_feature_definition(write(project_dir, reordered), churn_project).content_hash == first
    changed = copy.deepcopy(VALID)
    changed["pipeline"][1]["$group"]["events"] = {"$sum": 2}
    assert load_feature_definition(write(project_dir, changed), churn_project).content_hash != first


REFUSALS = {
    "$where": (with_stage({"$match": {"$where": "this.a > 1"}}), "stage 2 ($match): $where runs JavaScript and is not allowed"),
    "$function nested in $expr": (
        with_stage({"$match": {"$expr": {"$and": [{"$function": {"body": "f", "args": [], "lang": "js"}}]}}}),
        "stage 2 ($match): $function runs JavaScript and is not allowed (at $expr.$and.$function)",
    ),
    "$accumulator": (
        with_stage({"$group": {"_id": "$user_id", "x": {"$accumulator": {"init": "function(){}"}}}}, at=2),
        "stage 3 ($group): $accumulator runs JavaScript and is not allowed (at x.$accumulator)",
    ),
    "$out": (with_stage({"$out": "elsewhere"}, at=2), "stage 3 ($out): $out is not allowed"),
    "$merge": (with_stage({"$merge": {"into": "pipeline_runs"}}, at=2), "stage 3 ($merge): $merge is not allowed"),
    "$merge inside $facet": (
        with_stage({"$facet": {"copy": [{"$merge": {"into": "x"}}]}}, at=2),
        "stage 3 ($facet) > copy stage 1 ($merge): $merge is not allowed",
    ),
    "$lookup into another database": (
        with_stage({"$lookup": {"from": {"db": "billing", "coll": "invoices"}, "localField": "user_id",
                                "foreignField": "user_id", "as": "invoices"}}),
        "stage 2 ($lookup): reading from another database is not allowed",
    ),
    "$unionWith another database": (
        with_stage({"$unionWith": {"db": "billing", "coll": "events"}}),
        "stage 2 ($unionWith): reading from another database is not allowed",
    ),
    "$function inside a $lookup pipeline": (
        with_stage({"$lookup": {"from": "profiles", "as": "p", "pipeline": [
            {"$project": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}}]}}),
        "stage 2 ($lookup) > pipeline stage 1 ($project): $function runs JavaScript",
    ),
    "unknown $param": (
        with_stage({"$match": {"timestamp": {"$gte": {"$param": "horizon_start"}}}}),
        "stage 2 ($match): unknown $param 'horizon_start' (at timestamp.$gte) (known: as_of, min_amount, window_start)",
    ),
    "unsupported stage": (with_stage({"$currentOp": {}}), "stage 2 ($currentOp): unknown or unsupported stage"),
    "a stage with two operators": (with_stage({"$match": {}, "$limit": 1}), "stage 2: a stage is a mapping with exactly one $-operator"),
    "missing owner": ({k: v for k, v in VALID.items() if k != "owner"}, "owner: missing required key"),
    "missing pipeline": ({k: v for k, v in VALID.items() if k != "pipeline"}, "pipeline: missing required key"),
    "unknown key": ({**VALID, "schedule": "daily"}, "schedule: unknown key"),
    "name differs from the file": ({**VALID, "name": "other"}, "name: 'other' must equal the file name 'event_counts'"),
    "reserved feature name": (
        {**VALID, "features": {"user_id": {"type": "string"}}}, "features.user_id: reserved field",
    ),
    "parameter shadowing a built-in": ({**VALID, "parameters": {"as_of": 3}}, "parameters.as_of: shadows the built-in"),
    "min on a string feature": (
        {**VALID, "features": {"events": {"type": "string", "min": 1}}}, "min/max apply to int and float features",
    ),
    "a text feature": (
        {**VALID, "features": {"country": {"type": "string"}}},
        "features.country: a string feature cannot be a model input",
    ),
    "a source the project does not declare": (
        {**VALID, "source": "clicks"}, "source: 'clicks' is not a source of project churn (its sources: user_events)",
    ),
    # What a definition may read: only sources; never platform records, the log, another project's data, system.*.
    "$lookup into the registry": (
        with_stage({"$lookup": {"from": "feature_pipelines", "as": "defs", "pipeline": []}}),
        "stage 2 ($lookup): 'feature_pipelines' is a platform collection",
    ),
    "$unionWith the prediction log": (
        with_stage({"$unionWith": "prediction_log"}), "stage 2 ($unionWith): 'prediction_log' is a platform collection",
    ),
    "$unionWith another project's samples": (
        with_stage({"$unionWith": {"coll": "samples_spend", "pipeline": []}}),
        "stage 2 ($unionWith): 'samples_spend' is a platform collection",
    ),
    "$graphLookup on commit markers": (
        with_stage({"$graphLookup": {"from": "feature_partitions", "startWith": "$x", "connectFromField": "a",
                                     "connectToField": "b", "as": "m"}}),
        "stage 2 ($graphLookup): 'feature_partitions' is a platform collection",
    ),
    "$unionWith a system collection": (
        with_stage({"$unionWith": {"coll": "system.views"}}), "reading system collection 'system.views' is not allowed",
    ),
    "$unionWith a collection named by a $param": (
        {**with_stage({"$unionWith": {"$param": "coll"}}), "parameters": {"coll": "system.views"}},
        "stage 2 ($unionWith): the collection to read must be written literally, not through a $param",
    ),
    "$lookup from a $param": (
        {**with_stage({"$lookup": {"from": {"$param": "coll"}, "as": "x", "pipeline": []}}),
         "parameters": {"coll": "pipeline_runs"}},
        "stage 2 ($lookup): from must be written literally, not through a $param",
    ),
    # Output explosions.
    "$sample of 1e15": (with_stage({"$sample": {"size": 10**15}}, at=2), "stage 3 ($sample): size must be a literal"),
    "$sample through a $param": (
        {**with_stage({"$sample": {"size": {"$param": "min_amount"}}}, at=2)}, "stage 3 ($sample): size must be a literal",
    ),
    "$densify over the full range": (
        with_stage({"$densify": {"field": "timestamp", "range": {"step": 1, "unit": "second", "bounds": "full"}}}),
        "stage 2 ($densify): range.bounds must be an explicit [lower, upper] pair",
    ),
    "$range of 1e10 elements": (
        with_stage({"$project": {"n": {"$range": [0, 10**10]}}}),
        "stage 2 ($project): $range takes literal whole numbers with at most 10,000 elements (at n.$range)",
    ),
    "$range over a field": (
        with_stage({"$project": {"n": {"$range": [0, "$count"]}}}), "stage 2 ($project): $range takes literal",
    ),
    "limits beyond the allowed": (
        {**VALID, "limits": {"max_documents": 0}}, "limits.max_documents: Input should be greater than or equal to 1",
    ),
    "owner neither an email nor a team": ({**VALID, "owner": "ds@team"}, "owner: String should match pattern"),
    "version not an integer": ({**VALID, "version": "2"}, "version: Input should be a valid integer"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=str)
def test_refusals_name_the_file_and_the_stage(case, project_dir, churn_project):
    content, expected = REFUSALS[case]
    assert expected in problems_of(project_dir, churn_project, content)


def test_every_problem_of_a_file_is_reported(project_dir, churn_project):
    content = with_stage({"$match": {"$where": "1"}})
    content["pipeline"].append({"$out": "x"})
    del content["owner"]
    message = problems_of(project_dir, churn_project, content)
    assert "3 problems" in message
    assert "owner: missing required key" in message
    assert "$where runs JavaScript" in message
    assert "stage 4 ($out)" in message


def test_two_sets_may_not_produce_the_same_feature(project_dir, churn_project):
    write(project_dir, VALID)
    write(project_dir, {**VALID, "name": "more_counts"}, name="more_counts")
    with pytest.raises(FeatureDefinitionError, match="features.events: also produced by event_counts.yaml"):
        load_feature_definitions(project_dir, churn_project)


def test_invalid_yaml_names_the_file(project_dir, churn_project):
    path = project_dir / "features" / "event_counts.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(FeatureDefinitionError, match="event_counts.yaml: 1 problem:\n  - not valid YAML"):
        load_feature_definition(path, churn_project)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" + "".join(
    f"{chr(99 + i)}: &{chr(99 + i)} [{', '.join([f'*{chr(98 + i)}'] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize(("content", "problem"), [
    (BOMB.encode(), "line 2: YAML aliases (*name) are not allowed"),  # 9^10 strings if expanded
    (("pipeline: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "line 1: nested more than 64 levels deep"),
    (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
    (b"description: " + b"x" * (2 * 1024 * 1024), "the file has 2097165 bytes; a definition file may have at most"),
], ids=["alias bomb", "deep nesting", "not UTF-8", "too large"])
def test_a_hostile_file_is_refused_quickly_in_one_line_naming_it(project_dir, churn_project, content, problem):
    path = project_dir / "features" / "event_counts.yaml"
    path.write_bytes(content)
    with pytest.raises(FeatureDefinitionError) as refused:
        load_feature_definition(path, churn_project)
    first, detail = str(refused.value).splitlines()  # one problem, one line, under this file's name
    assert first == f"{path}: 1 problem:" and problem in detail


# --- parameters -------------------------------------------------------------------

AS_OF = dt.datetime(2024, 3, 2, tzinfo=dt.timezone.utc)


def test_parameters_are_typed_values():
    values = parameter_values(as_of=AS_OF, window_days=30, declared={"n": 7, "since": dt.date(2024, 1, 5), "flag": True})
    assert values["as_of"] == AS_OF
    assert values["window_start"] == dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)  # 2024 is a leap year
    assert values["n"] == 7 and values["flag"] is True
    assert values["since"] == dt.datetime(2024, 1, 5, tzinfo=dt.timezone.utc)


def test_substitution_walks_the_stages_and_leaves_the_template_alone():
    template = [
        {"$match": {"timestamp": {"$gte": {"$param": "window_start"}, "$lt": {"$param": "as_of"}}}},
        {"$lookup": {"from": "x", "as": "y", "pipeline": [{"$limit": {"$param": "n"}}]}},
        {"$set": {"label": "{$param: n}", "list": [{"$param": "n"}, 1], "day": dt.date(2024, 1, 1)}},
    ]
    original = copy.deepcopy(template)
    values = parameter_values(as_of=AS_OF, window_days=1, declared={"n": 5})
    stages = substitute(template, values)
    assert template == original
    assert stages[0]["$match"]["timestamp"] == {"$gte": AS_OF - dt.timedelta(days=1), "$lt": AS_OF}
    assert stages[1]["$lookup"]["pipeline"] == [{"$limit": 5}]
    assert stages[2]["$set"]["label"] == "{$param: n}"  # a string is data, never parsed
    assert stages[2]["$set"]["list"] == [5, 1]
    assert stages[2]["$set"]["day"] == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def test_substitution_refuses_an_unknown_parameter():
    with pytest.raises(KeyError, match="unknown \\$param 'nope'"):
        substitute([{"$limit": {"$param": "nope"}}], {"as_of": AS_OF})


def test_densify_is_bounded_once_parameters_are_known():
    window = {"bounds": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 31)], "step": 1}
    fine = [{"$densify": {"field": "t", "range": {**window, "unit": "day"}}}]
    exploding = [{"$densify": {"field": "t", "range": {**window, "unit": "millisecond"}}}]
    nested = [{"$facet": {"a": exploding}}]
    assert expansion_problems(fine) == []
    assert "spans 2,592,000,001 steps; at most 100,000 steps" in expansion_problems(exploding)[0]
    assert expansion_problems(nested)


def test_limits_are_part_of_the_version_and_absent_limits_leave_the_hash_unchanged(project_dir, churn_project):
    plain = load_feature_definition(write(project_dir, VALID), churn_project)
    bounded = load_feature_definition(write(project_dir, {**VALID, "limits": {"max_documents": 500}}), churn_project)
    assert plain.bounds.max_documents == 10_000_000 and bounded.bounds.max_documents == 500
    assert plain.content_hash != bounded.content_hash
    # The hash of a definition without limits (of the default kind) is what it was before limits and kinds existed.
    legacy = {k: v for k, v in plain.model_dump(mode="json").items() if k not in ("limits", "kind")}
    assert plain.content_hash == hashlib.sha256(
        json.dumps(legacy, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
