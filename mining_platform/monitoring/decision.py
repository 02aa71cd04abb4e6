"""The drift decision: which features drifted past the project's PSI threshold, and whether that asks for a retrain.

Plain functions over PSI values, shared by the drift report and the drift sensor (which must decide without
loading the statistics libraries the report needs).
"""

from mining_platform.spec.project import DriftConfig


def drifted_features(psi: dict[str, float], drift: DriftConfig) -> dict[str, float]:
    """The features whose PSI exceeds the project's threshold, largest first."""
    over = {name: value for name, value in psi.items() if value > drift.psi_threshold}
    return dict(sorted(over.items(), key=lambda item: -item[1]))


def needs_retrain(drifted: dict[str, float], drift: DriftConfig) -> bool:
    return len(drifted) >= drift.min_drifted_features


def drift_summary(drifted: dict[str, float], features: int, drift: DriftConfig) -> str:
    """E.g. "2 of 17 features over PSI 0.2 (days_since_last_click 0.571, days_since_last_event 0.527)"."""
    listed = ", ".join(f"{name} {psi:.3f}" for name, psi in drifted.items()) or "none"
    return f"{len(drifted)} of {features} features over PSI {drift.psi_threshold} ({listed})"
