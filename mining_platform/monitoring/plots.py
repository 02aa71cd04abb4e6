"""Histogram of a drifted variable (the reference's share per bin next to the day's); calibration of realised
performance (mean prediction against mean realised label per bin)."""

import numpy as np

from mining_platform.figures import plt, png_markdown
from mining_platform.monitoring.distributions import Comparison
from mining_platform.registry.distribution import Distribution
from mining_platform.tasks import Task


def drift_histogram(comparison: Comparison, reference: Distribution, *, partition: str, version: str) -> str:
    """The two binned distributions as grouped bars, inline Markdown for Dagster metadata."""
    labels = reference.labels
    positions = np.arange(len(labels))
    figure, axes = plt.subplots(figsize=(max(5.0, 0.55 * len(labels) + 2), 3.6))
    try:
        axes.bar(positions - 0.2, comparison.expected, width=0.4, label=f"reference (v{version})", color="#7a8fa6")
        axes.bar(positions + 0.2, comparison.actual, width=0.4, label=partition, color="#d9822b")
        axes.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
        axes.set_ylabel("share of rows")
        axes.set_title(f"{comparison.name}: PSI {comparison.psi:.3f}", fontsize=10)
        axes.legend(fontsize=8)
        figure.tight_layout()
        return png_markdown(figure, f"{comparison.name} drift")
    finally:
        plt.close(figure)


def calibration_plot(curves: dict[str, list[dict]], *, partition: str, task: Task) -> str:
    """Per version (label -> calibration bins): mean realised label against mean prediction; the diagonal is a
    perfectly calibrated version."""
    figure, axes = plt.subplots(figsize=(4.6, 4.0))
    try:
        lows = [b["predicted"] for bins in curves.values() for b in bins] + [b["realised"] for bins in curves.values()
                                                                             for b in bins]
        span = task.score_range or (min(lows, default=0.0), max(lows, default=1.0))
        axes.plot(span, span, color="#999999", linestyle="--", linewidth=1, label="calibrated")
        for label, bins in curves.items():
            axes.plot([b["predicted"] for b in bins], [b["realised"] for b in bins], marker="o", label=label)
        axes.set_xlabel("mean prediction")
        axes.set_ylabel("mean realised label")
        axes.set_title(f"calibration, {partition}", fontsize=10)
        axes.legend(fontsize=8)
        figure.tight_layout()
        return png_markdown(figure, "calibration")
    finally:
        plt.close(figure)
