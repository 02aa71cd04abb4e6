"""Figures for Dagster metadata and MLflow artifacts: matplotlib without a display, inline as Markdown."""

import base64
import io
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")  # headless: run workers have no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["close", "plt", "png_markdown"]


def png_markdown(figure: Figure, title: str) -> str:
    """The figure inline as Markdown, for a Dagster metadata entry."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"


def close(figures: Iterable[Figure]) -> None:
    for figure in figures:
        plt.close(figure)
