"""Drift statistics against scipy and closed forms on known distributions."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from mining_platform.monitoring.distributions import compare, observed_shares, psi
from mining_platform.registry.distribution import Distribution, Kind, categorical_reference, numeric_reference
from mining_platform.registry.reference import ModelReference, build_reference

pytestmark = pytest.mark.fast


def test_psi_is_the_textbook_sum_over_bins():
    expected = np.array([0.1, 0.2, 0.3, 0.4])
    actual = np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(expected, actual) == pytest.approx(float(np.sum((actual - expected) * np.log(actual / expected))))
    assert psi(expected, expected) == 0.0
    # An empty bin gives a large but finite value (floored at 1e-4), not inf.
    assert 1.0 < psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) < 10.0


def test_psi_of_shifted_normals_is_close_to_their_jeffreys_divergence():
    rng = np.random.default_rng(1)
    reference = numeric_reference(rng.normal(0.0, 1.0, 200_000))
    assert len(reference.edges) == 9  # deciles
    assert reference.shares == pytest.approx([0.1] * 10, abs=1e-3)
    same = compare("x", reference, rng.normal(0.0, 1.0, 200_000))
    shifted = compare("x", reference, rng.normal(0.5, 1.0, 200_000))
    assert same.psi < 0.002
    # Binning can only lose information: below the continuous Jeffreys divergence (delta^2 = 0.25), and close to it.
    assert 0.2 < shifted.psi < 0.25
    assert shifted.mean == pytest.approx(0.5, abs=0.01)


def test_ks_matches_scipy_on_the_same_values():
    rng = np.random.default_rng(2)
    base, day = rng.exponential(2.0, 1500), rng.exponential(2.6, 800)
    reference = numeric_reference(base, sample_size=5000)  # keeps every value
    result = compare("x", reference, day)
    expected = ks_2samp(base, day)
    assert result.ks_statistic == pytest.approx(expected.statistic)
    assert result.ks_pvalue == pytest.approx(expected.pvalue)
    assert result.js_distance is None


def test_ks_uses_a_seeded_sample_of_large_references():
    values = np.random.default_rng(3).normal(size=50_000)
    reference = numeric_reference(values, sample_size=2000, seed=5)
    assert len(reference.sample) == 2000
    assert reference.sample == numeric_reference(values, sample_size=2000, seed=5).sample
    assert reference.sample != numeric_reference(values, sample_size=2000, seed=6).sample


def test_jensen_shannon_matches_scipy_for_boolean_features():
    rng = np.random.default_rng(4)
    base = (rng.random(4000) < 0.3).astype(float)
    day = (rng.random(3000) < 0.6).astype(float)
    day[:300] = np.nan
    reference = categorical_reference(base)
    result = compare("flag", reference, day)
    assert result.kind is Kind.categorical
    assert result.js_distance == pytest.approx(jensenshannon(result.expected, result.actual, base=2))
    assert result.actual[1] == pytest.approx((day == 1).sum() / day.size)
    assert result.actual[-1] == pytest.approx(0.1)  # the missing bin
    assert result.ks_statistic is None
    assert result.psi > 0.2


def test_missing_values_are_a_bin_of_their_own():
    values = np.arange(1000, dtype=float)
    reference = numeric_reference(values)
    assert reference.missing_rate == 0.0
    day = values.copy()
    day[::2] = np.nan  # same spread, half of it missing
    result = compare("x", reference, day)
    assert result.missing_rate == 0.5
    assert result.actual[-1] == 0.5 and result.expected[-1] == 0.0
    assert result.psi > 1.0


def test_discrete_values_share_bins_consistently():
    rng = np.random.default_rng(6)
    values = rng.choice([0, 0, 0, 0, 1, 2, 3, 7], size=5000).astype(float)
    reference = numeric_reference(values)
    assert len(set(reference.edges)) == len(reference.edges)  # tied quantiles merged
    assert sum(reference.shares) == pytest.approx(1.0)
    assert compare("x", reference, values).psi == pytest.approx(0.0, abs=1e-12)
    shares = observed_shares(reference, np.array([0.0, 0.0, 7.0, np.nan]))
    assert shares.sum() == pytest.approx(1.0)
    assert shares[-1] == 0.25


def test_a_reference_survives_its_json_round_trip():
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.gamma(2.0, 3.0, 500), (rng.random(500) < 0.4).astype(float)])
    X[:25, 0] = np.nan
    reference = build_reference(X=X, features=["amount", "flag"], boolean_features={"flag"},
                                validation_scores=rng.random(200), sample_partitions=["2024-01-01"])
    again = ModelReference.from_json(reference.to_json())
    assert again == reference
    assert again.features["amount"].missing_rate == 0.05
    assert again.features["flag"].kind is Kind.categorical
    assert again.features["amount"].labels[0].startswith("[-inf") and again.features["amount"].labels[-1] == "missing"
    with pytest.raises(ValueError, match="format"):
        ModelReference.from_json({**reference.to_json(), "format": 99})


def test_distribution_of_no_values_compares_without_crashing():
    reference = numeric_reference(np.array([np.nan, np.nan]))
    assert reference.missing_rate == 1.0 and reference.edges == ()
    assert isinstance(reference, Distribution)
    assert compare("x", reference, np.array([1.0, np.nan])).psi > 0.0
