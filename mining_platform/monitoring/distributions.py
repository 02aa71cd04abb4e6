"""How far a day's values are from a version's reference distributions.

The statistics are scipy's: PSI is the symmetric Kullback–Leibler divergence of the
two binned distributions (`scipy.special.rel_entr` both ways), KS is
`scipy.stats.ks_2samp` on the values, Jensen–Shannon is
`scipy.spatial.distance.jensenshannon` (base 2, so 0..1) on category frequencies.
The distributions themselves are stored with each version (`mining_platform.registry.distribution`).
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import ks_2samp

from mining_platform.registry.distribution import Distribution, Kind, counts, present_values

# Floor of a bin's share, so an empty bin on one side gives a large but finite PSI.
EPSILON = 1e-4


def observed_shares(reference: Distribution, values: np.ndarray) -> np.ndarray:
    """Shares of `values` in the reference's bins, the last bin being the missing values."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        raise ValueError("no values to compare")
    binned = np.append(counts(reference, present_values(values)), np.isnan(values).sum())
    return binned / values.size


def psi(expected: np.ndarray, actual: np.ndarray, *, epsilon: float = EPSILON) -> float:
    """Population stability index: sum((a - e) * ln(a / e)) = KL(a‖e) + KL(e‖a)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), epsilon, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum(rel_entr(a, e) + rel_entr(e, a)))


@dataclass(frozen=True)
class Comparison:
    """A variable of one day against its reference."""

    name: str
    kind: Kind
    rows: int
    psi: float
    expected: tuple[float, ...]  # shares per bin (last: missing), reference
    actual: tuple[float, ...]  # same bins, the day
    missing_rate: float
    reference_missing_rate: float
    mean: float | None
    reference_mean: float | None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    js_distance: float | None = None


def compare(name: str, reference: Distribution, values: np.ndarray) -> Comparison:
    """PSI for every variable; KS for numeric ones, Jensen–Shannon for categorical ones."""
    values = np.asarray(values, dtype=np.float64)
    expected, actual = reference.bin_shares(), observed_shares(reference, values)
    present = present_values(values)
    ks_statistic = ks_pvalue = js = None
    if reference.kind is Kind.numeric and present.size and reference.sample:
        ks = ks_2samp(np.asarray(reference.sample), present)
        ks_statistic, ks_pvalue = float(ks.statistic), float(ks.pvalue)
    if reference.kind is Kind.categorical:
        js = float(jensenshannon(expected, actual, base=2))
    return Comparison(
        name=name, kind=reference.kind, rows=int(values.size), psi=psi(expected, actual),
        expected=tuple(float(x) for x in expected), actual=tuple(float(x) for x in actual),
        missing_rate=float(np.isnan(values).mean()), reference_missing_rate=reference.missing_rate,
        mean=float(present.mean()) if present.size else None, reference_mean=reference.mean,
        ks_statistic=ks_statistic, ks_pvalue=ks_pvalue, js_distance=js,
    )
