"""The reference distribution of one model input (or of its scores), as stored with a version.

A numeric feature's reference is its quantile bins (edges from the training rows, so
each bin held about the same share), its missing rate, and a seeded sample of its
values for the two-sample Kolmogorov–Smirnov test. A boolean feature's reference is
its category frequencies, as is a classifier's predicted class (categories named by its classes). The same binning is applied to the reference and to a day
(`counts`), with missing values as a bin of their own: a feature that starts
arriving empty has drifted too. How far a day is from it: `mining_platform.monitoring`.
"""

from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

BINS = 10
SAMPLE_SIZE = 2000
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
    categories: tuple[str, ...] = CATEGORIES  # categorical: value i is category i (booleans: false, true)

    def to_json(self) -> dict:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, raw: dict) -> "Distribution":
        return cls(
            kind=Kind(raw["kind"]), rows=int(raw["rows"]), missing_rate=float(raw["missing_rate"]),
            shares=tuple(raw["shares"]), edges=tuple(raw.get("edges", ())), sample=tuple(raw.get("sample", ())),
            mean=raw.get("mean"), categories=tuple(raw.get("categories", CATEGORIES)),
        )

    @property
    def labels(self) -> list[str]:
        """A readable name per bin, then `missing`."""
        if self.kind is Kind.categorical:
            return [*self.categories, "missing"]
        bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
        return [f"[{lo}, {hi})" for lo, hi in zip(bounds, bounds[1:])] + ["missing"]

    def bin_shares(self) -> np.ndarray:
        """Shares of all rows per bin, the last bin being the missing values."""
        return np.append(np.asarray(self.shares) * (1.0 - self.missing_rate), self.missing_rate)


def present_values(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def numeric_reference(values: np.ndarray, *, bins: int = BINS, sample_size: int = SAMPLE_SIZE,
                      seed: int = 0) -> Distribution:
    """Quantile bins of the non-missing values (ties merge bins), and a seeded sample for KS."""
    values = np.asarray(values, dtype=np.float64)
    present = present_values(values)
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


def categorical_reference(values: np.ndarray, categories: tuple[str, ...] = CATEGORIES) -> Distribution:
    """Frequencies of the categories among the non-missing values: false/true of a boolean (0/1) feature, or
    category indices 0..len(categories)-1."""
    values = np.asarray(values, dtype=np.float64)
    present = present_values(values)
    reference = Distribution(kind=Kind.categorical, rows=int(values.size), missing_rate=_missing_rate(values),
                             shares=(), mean=float(present.mean()) if present.size else None,
                             categories=tuple(categories))
    return _with_shares(reference, present)


def _missing_rate(values: np.ndarray) -> float:
    return float(np.isnan(values).mean()) if values.size else 0.0


def counts(reference: Distribution, values: np.ndarray) -> np.ndarray:
    """How many of the (non-missing) `values` fall in each of the reference's bins or categories."""
    if reference.kind is Kind.categorical and reference.categories == CATEGORIES:
        return np.array([(values == 0).sum(), (values != 0).sum()], dtype=np.float64)
    if reference.kind is Kind.categorical:
        index = np.clip(np.asarray(values, dtype=np.int64), 0, len(reference.categories) - 1)
        return np.bincount(index, minlength=len(reference.categories)).astype(np.float64)
    index = np.searchsorted(np.asarray(reference.edges), values, side="right")
    return np.bincount(index, minlength=len(reference.edges) + 1).astype(np.float64)


def _with_shares(reference: Distribution, values: np.ndarray) -> Distribution:
    binned = counts(reference, values)
    shares = binned / binned.sum() if binned.sum() else np.full(binned.size, 1.0 / binned.size)
    return Distribution(**{**reference.__dict__, "shares": tuple(float(s) for s in shares)})
