"""Realised-performance statistics, canary routing and the version hit rate: pure functions (fast lane)."""

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss, mean_absolute_error, roc_auc_score

from mining_platform.monitoring.realised import Served, hit_rate
from mining_platform.spec.routing import canary_position, routes_to_challenger
from mining_platform.tasks import BINARY, REGRESSION
from mining_platform.tasks.judge import compare, realised
from mining_platform.tasks.judge.statistics import Interval, calibration, delong, pool
from tests.fixtures.scored import scored

pytestmark = pytest.mark.fast
UTC = dt.timezone.utc


def test_delong_auc_equals_scikit_learn_and_its_covariance_matches_the_bootstrap():
    y, a, b = scored(600, 0)
    aucs, covariance = delong(y, a, b)
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)], abs=1e-12)
    rng = np.random.default_rng(1)
    draws = []
    for _ in range(600):
        i = rng.integers(0, len(y), len(y))
        draws.append([roc_auc_score(y[i], a[i]), roc_auc_score(y[i], b[i])])
    bootstrap = np.cov(np.array(draws).T)
    assert covariance == pytest.approx(bootstrap, rel=0.3)


def test_realised_binary_metrics_match_scikit_learn():
    y, a, _ = scored(500, 2)
    r = realised(BINARY, y, a, confidence=0.95)
    assert r.rows == 500
    assert r.metrics["auc"] == pytest.approx(roc_auc_score(y, a))
    assert r.metrics["pr_auc"] == pytest.approx(average_precision_score(y, a))
    assert r.metrics["logloss"] == pytest.approx(log_loss(y, a))
    assert r.metrics["brier"] == pytest.approx(np.mean((a - y) ** 2))
    auc = r.intervals["auc"]
    assert auc.low < r.metrics["auc"] < auc.high and auc.high - auc.low < 0.2
    assert sum(b["rows"] for b in r.calibration) == 500
    assert 0 <= r.expected_calibration_error < 1


def test_one_class_days_have_no_auc_but_keep_the_losses():
    y = np.zeros(50)
    r = realised(BINARY, y, np.full(50, 0.2), confidence=0.95)
    assert "auc" not in r.metrics and r.metrics["logloss"] == pytest.approx(-np.log(0.8))
    assert compare(BINARY, "auc", y, np.full(50, 0.2), np.full(50, 0.3), confidence=0.95) is None


def test_regression_intervals_cover_the_metrics():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 400)
    predicted = y + rng.normal(0, 1, 400)
    r = realised(REGRESSION, y, predicted, confidence=0.95)
    assert r.metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted))
    assert r.intervals["mae"].low < r.metrics["mae"] < r.intervals["mae"].high
    assert r.intervals["rmse"].low < r.metrics["rmse"] < r.intervals["rmse"].high
    assert [b["rows"] for b in r.calibration] and sum(b["rows"] for b in r.calibration) == 400


def test_a_clearly_better_challenger_has_an_interval_clear_of_zero_in_its_favour():
    y, better, worse = scored(2000, 4, strength=1.5)
    gain = compare(BINARY, "auc", y, worse, better, confidence=0.95)  # champion worse, challenger better
    assert gain.estimate == pytest.approx(roc_auc_score(y, better) - roc_auc_score(y, worse))
    assert gain.low > 0
    loss = compare(BINARY, "auc", y, better, worse, confidence=0.95)
    assert loss.high < 0 and loss.estimate == pytest.approx(-gain.estimate)
    same = compare(BINARY, "logloss", y, better, better, confidence=0.95)
    assert same.estimate == 0
    # Log loss and regression losses compare per row: positive when the challenger loses less.
    assert compare(BINARY, "logloss", y, worse, better, confidence=0.95).estimate > 0
    rng = np.random.default_rng(5)
    target = rng.normal(0, 1, 500)
    close, far = target + rng.normal(0, 0.3, 500), target + rng.normal(0, 1.0, 500)
    assert compare(REGRESSION, "r2", target, far, close, confidence=0.95).low > 0
    assert compare(REGRESSION, "mae", target, close, far, confidence=0.95).high < 0


def test_pooling_days_weighs_by_precision():
    days = [Interval(0.02, 0.0, 0.04, 0.0001), Interval(0.04, 0.0, 0.08, 0.0004)]
    pooled = pool(days, confidence=0.95)
    assert pooled.estimate == pytest.approx((0.02 / 0.0001 + 0.04 / 0.0004) / (1 / 0.0001 + 1 / 0.0004))
    assert pooled.variance == pytest.approx(1 / (1 / 0.0001 + 1 / 0.0004))
    assert pooled.high - pooled.low < days[0].high - days[0].low


def test_calibration_bins_compare_mean_prediction_with_the_realised_rate():
    y = np.array([0, 0, 1, 1, 1, 0])
    table = calibration(y, np.array([0.05, 0.05, 0.95, 0.95, 0.55, 0.55]), bins=10)
    assert [(b["rows"], b["predicted"], b["realised"]) for b in table] == [
        (2, pytest.approx(0.05), 0.0), (2, pytest.approx(0.55), 0.5), (2, pytest.approx(0.95), 1.0)]


def test_canary_routing_is_sticky_and_takes_its_share():
    entities = [f"u{i:07d}" for i in range(20_000)]
    routed = [routes_to_challenger("churn", e, "7", 0.1) for e in entities]
    assert abs(sum(routed) / len(entities) - 0.1) < 0.01
    assert routed == [routes_to_challenger("churn", e, "7", 0.1) for e in entities]  # same entity, same answer
    # Another challenger version draws another sample; another project too; int and string ids differ.
    assert routed != [routes_to_challenger("churn", e, "8", 0.1) for e in entities]
    assert canary_position("churn", 5, "7") != canary_position("churn", "5", "7")
    assert canary_position("churn", "u1", "7") != canary_position("spend", "u1", "7")
    # A larger share keeps every entity the smaller one routed.
    wider = [routes_to_challenger("churn", e, "7", 0.3) for e in entities]
    assert all(w for r, w in zip(routed, wider) if r)


def test_hit_rate_counts_answers_by_the_version_their_role_named_at_that_moment():
    t0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
    timeline = [Served(t0, "1"), Served(t0 + dt.timedelta(hours=12), "2", "3")]

    def doc(hours: float, version: str, role: str = "champion") -> dict:
        return {"time": t0 + dt.timedelta(hours=hours), "model": {"version": version}, "role": role}

    logged = [doc(1, "1"), doc(2, "1"), doc(12.01, "1"),  # a stale answer after the move
              doc(13, "2"), doc(14, "3", "challenger"), doc(-1, "1")]  # the last is before any deployment
    rate = hit_rate(logged, timeline)
    assert (rate.logged, rate.hits, rate.unattributed) == (5, 4, 1)
    assert rate.rate == pytest.approx(0.8)
    assert rate.misses == {"served v1 as champion, expected v2": 1}
    assert hit_rate([], timeline).rate is None
