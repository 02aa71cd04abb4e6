"""The multiclass task on its own: its spec (classes in the label definition, its gate metrics), its labels and
scores, how its versions are judged (against scikit-learn), and drift on the predicted class."""

import shutil

import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from mining_platform.monitoring.distributions import compare as drift
from mining_platform.registry.distribution import categorical_reference
from mining_platform.spec import load_spec
from mining_platform.spec.definition import DefinitionError
from mining_platform.spec.project import ProjectConfigError
from mining_platform.tasks import BINARY, task_named
from mining_platform.tasks.judge import compare, judge_of, realised
from tests.conftest import REPO

pytestmark = pytest.mark.fast

PLANS = task_named("multiclass", classes=["basic", "plus", "premium"])


def probabilities(rng, y, sharpness):
    """Scores that favour the true class by `sharpness`, rows summing to 1."""
    logits = rng.normal(size=(len(y), 3))
    logits[np.arange(len(y)), y.astype(int)] += sharpness
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture
def plans(tmp_path):
    shutil.copytree(REPO / "examples" / "plans", tmp_path / "plans")
    return tmp_path / "plans"


def rewrite(path, **changes):
    raw = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_the_example_project_is_a_multiclass_task_of_its_label_classes(plans):
    spec = load_spec(plans)
    assert spec.task == "multiclass" and spec.task_type == PLANS
    assert spec.task_type.booster_params() == {"objective": "multi:softprob", "eval_metric": ["merror", "mlogloss"],
                                               "num_class": 3}


@pytest.mark.parametrize(("changes", "problem"), [
    ({"classes": None}, "classes: multiclass: name the classes in the label definition, class 0 first"),
    ({"classes": ["basic", "plus"]}, "got 2 (two classes: use task binary)"),
    ({"classes": ["basic", "basic", "$plus"]}, "'$plus' is not a class name"),
    ({"default": 3}, "default: a multiclass label is a class index 0..2 (or null), got 3"),
])
def test_a_multiclass_label_names_valid_classes_and_a_valid_default(plans, changes, problem):
    rewrite(plans / "labels" / "next_plan.yaml", **changes)
    with pytest.raises(DefinitionError) as error:
        load_spec(plans)
    assert problem in str(error.value) and "next_plan.yaml" in str(error.value)


def test_only_a_multiclass_label_names_classes(tmp_path):
    shutil.copytree(REPO / "projects" / "churn", tmp_path / "churn")
    rewrite(tmp_path / "churn" / "labels" / "churned.yaml", classes=["stays", "goes", "maybe"])
    with pytest.raises(DefinitionError, match="classes: a binary task takes no classes"):
        load_spec(tmp_path / "churn")


def test_the_gate_of_a_multiclass_model_is_one_of_its_metrics(plans):
    raw = yaml.safe_load((plans / "project.yaml").read_text())
    raw["model"]["gate"] = {"metric": "auc", "min": 0.7, "max_regression": 0.01}
    (plans / "project.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProjectConfigError, match="choose macro_auc, accuracy, mlogloss"):
        load_spec(plans)
    raw["model"]["gate"] = {"metric": "mlogloss", "min": 0.7, "max_regression": 0.01}
    (plans / "project.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProjectConfigError, match="mlogloss is lower-is-better: give `max`"):
        load_spec(plans)


def test_labels_are_class_indices_and_scores_a_distribution_per_row():
    assert PLANS.invalid_labels(np.array([0.0, 1.0, 2.0, 3.0, 1.5, -1.0])).tolist() == [False] * 3 + [True] * 3
    assert "a classifier needs two classes" in PLANS.training_problem(np.zeros(5))
    assert PLANS.training_problem(np.array([0.0, 2.0])) is None
    good = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    assert PLANS.score_problem(good, 2) is None
    assert "2 rows of 3 probabilities summing to 1" in PLANS.score_problem(good * 1.5, 2)
    assert PLANS.score_problem(good[:, 0], 2) is not None and PLANS.score_problem(good, 3) is not None
    assert PLANS.answer(good) == {"predictions": good.tolist(), "classes": ["basic", "plus", "premium"],
                                  "predicted_class": ["plus", "basic"]}
    assert PLANS.mean_score(good) == pytest.approx(0.55)
    assert PLANS.drift_values(good).tolist() == [1.0, 0.0]


def test_a_version_is_judged_as_scikit_learn_judges_it():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=600).astype(np.float64)
    scores = probabilities(rng, y, 1.5)
    judge = judge_of(PLANS)
    metrics = judge.evaluate(y, scores)
    assert metrics["mlogloss"] == pytest.approx(log_loss(y, scores, labels=[0, 1, 2]))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, scores.argmax(axis=1)))
    assert metrics["macro_auc"] == pytest.approx(roc_auc_score(y, scores, multi_class="ovr", average="macro"))
    assert metrics["majority_rate"] == pytest.approx(np.bincount(y.astype(int)).max() / len(y))
    assert judge.train_metric(y, scores) == ("train_mlogloss", metrics["mlogloss"])

    day = realised(PLANS, y, scores, confidence=0.95)
    assert day.rows == 600 and day.metrics["mlogloss"] == pytest.approx(metrics["mlogloss"])
    assert day.metrics["macro_auc"] == pytest.approx(metrics["macro_auc"])
    for c, name in enumerate(PLANS.classes):
        assert day.metrics[f"{name}.auc"] == pytest.approx(roc_auc_score(y == c, scores[:, c]))
        assert day.metrics[f"{name}.share"] == pytest.approx(np.mean(y == c))
        assert day.metrics[f"{name}.recall"] == pytest.approx(np.mean(scores[y == c].argmax(axis=1) == c))
        low, high = day.intervals[f"{name}.auc"].low, day.intervals[f"{name}.auc"].high
        assert low < day.metrics[f"{name}.auc"] < high
    accuracy = day.intervals["accuracy"]
    assert accuracy.low < metrics["accuracy"] < accuracy.high and accuracy.high - accuracy.low < 0.1
    assert 0 <= day.expected_calibration_error < 1 and day.calibration


def test_the_comparison_points_to_the_better_version_on_the_same_rows():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, size=800).astype(np.float64)
    worse, better = probabilities(rng, y, 0.3), probabilities(rng, y, 2.5)
    for metric in ("mlogloss", "accuracy", "macro_auc"):
        gain = compare(PLANS, metric, y, worse, better, confidence=0.95)
        assert gain.low > 0, metric
        assert compare(PLANS, metric, y, better, worse, confidence=0.95).high < 0, metric


def test_drift_of_a_multiclass_model_is_on_its_predicted_class():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=1000).astype(np.float64)
    reference = categorical_reference(PLANS.drift_values(probabilities(rng, y, 2.0)), PLANS.classes)
    assert reference.labels == ["basic", "plus", "premium", "missing"]
    same = drift("score", reference, PLANS.drift_values(probabilities(rng, rng.integers(0, 3, 1000), 2.0)))
    shifted = drift("score", reference, PLANS.drift_values(probabilities(rng, np.full(1000, 2.0), 2.0)))
    assert same.psi < 0.05 and shifted.psi > 1.0 and shifted.js_distance > same.js_distance
    # A boolean feature's reference is unchanged: false/true.
    assert categorical_reference(np.array([0.0, 1.0, 1.0])).labels == ["false", "true", "missing"]
    assert BINARY.drift_categories is None
