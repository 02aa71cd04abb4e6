"""Reference distributions of a model's inputs and scores, and how far a day's values are from them.

A numeric feature's reference is its quantile bins (edges from the training rows, so
each bin held about the same share), its missing rate, and a seeded sample of its
values for the two-sample Kolmogorov–Smirnov test. A boolean feature's reference is
its category frequencies. The same binning is applied to the reference and to the
day, with missing values as a bin of their own: a feature that starts arriving empty
has drifted too.

The statistics are scipy's: PSI is the symmetric Kullback–Leibler divergence of the
two binned distributions (`scipy.special.rel_entr` both ways), KS is
`scipy.stats.ks_2samp` on the values, Jensen–Shannon is
`scipy.spatial.distance.jensenshannon` (base 2, so 0..1) on category frequencies.
"""

from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import ks_2samp

BINS = 10
SAMPLE_SIZE = 2000
# Floor of a bin's share, so an empty bin on one side gives a large but finite PSI.
EPSILON = 1e-4
CATEGORIES = ("false", "true")


class Kind(str, Enum):
    numeric = "numeric"
    categorical = "categorical"


@dataclass(frozen=True)
class Distribution:
    """One variable's reference: bins or categories, shares of the non-missing values, missing rate."""

    kind: Kind
    rows: int
    missing_rate: float
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()  # numeric: bin i holds edges[i-1] <= x < edges[i]; first and last are open
    sample: tuple[float, ...] = ()  # numeric: values for the KS test
    mean: float | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, raw: dict) -> "Distribution":
        return cls(
            kind=Kind(raw["kind"]), rows=int(raw["rows"]), missing_rate=float(raw["missing_rate"]),
            shares=tuple(raw["shares"]), edges=tuple(raw.get("edges", ())), sample=tuple(raw.get("sample", ())),
            mean=raw.get("mean"),
        )

    @property
    def labels(self) -> list[str]:
        """A readable name per bin, then `missing`."""
        if self.kind is Kind.categorical:
            return [*CATEGORIES, "missing"]
        bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
        return [f"[{lo}, {hi})" for lo, hi in zip(bounds, bounds[1:])] + ["missing"]

    def bin_shares(self) -> np.ndarray:
        """Shares of all rows per bin, the last bin being the missing values."""
        return np.append(np.asarray(self.shares) * (1.0 - self.missing_rate), self.missing_rate)


def _present(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def numeric_reference(values: np.ndarray, *, bins: int = BINS, sample_size: int = SAMPLE_SIZE,
                      seed: int = 0) -> Distribution:
    """Quantile bins of the non-missing values (ties merge bins), and a seeded sample for KS."""
    values = np.asarray(values, dtype=np.float64)
    present = _present(values)
    if present.size:
        edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    else:
        edges = np.array([])
    if present.size > sample_size:
        sample = np.sort(np.random.default_rng(seed).choice(present, size=sample_size, replace=False))
    else:
        sample = np.sort(present)
    reference = Distribution(
        kind=Kind.numeric, rows=int(values.size), missing_rate=_missing_rate(values),
        shares=(), edges=tuple(float(e) for e in edges), sample=tuple(float(v) for v in sample),
        mean=float(present.mean()) if present.size else None,
    )
    return _with_shares(reference, present)


def categorical_reference(values: np.ndarray) -> Distribution:
    """Frequencies of false/true among the non-missing values of a boolean (0/1) feature."""
    values = np.asarray(values, dtype=np.float64)
    present = _present(values)
    reference = Distribution(kind=Kind.categorical, rows=int(values.size), missing_rate=_missing_rate(values),
                             shares=(), mean=float(present.mean()) if present.size else None)
    return _with_shares(reference, present)


def _missing_rate(values: np.ndarray) -> float:
    return float(np.isnan(values).mean()) if values.size else 0.0


def _counts(reference: Distribution, present: np.ndarray) -> np.ndarray:
    if reference.kind is Kind.categorical:
        return np.array([(present == 0).sum(), (present != 0).sum()], dtype=np.float64)
    index = np.searchsorted(np.asarray(reference.edges), present, side="right")
    return np.bincount(index, minlength=len(reference.edges) + 1).astype(np.float64)


def _with_shares(reference: Distribution, present: np.ndarray) -> Distribution:
    counts = _counts(reference, present)
    shares = counts / counts.sum() if counts.sum() else np.full(counts.size, 1.0 / counts.size)
    return Distribution(**{**reference.__dict__, "shares": tuple(float(s) for s in shares)})


def observed_shares(reference: Distribution, values: np.ndarray) -> np.ndarray:
    """Shares of `values` in the reference's bins, the last bin being the missing values."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        raise ValueError("no values to compare")
    counts = np.append(_counts(reference, _present(values)), np.isnan(values).sum())
    return counts / values.size


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
    present = _present(values)
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
