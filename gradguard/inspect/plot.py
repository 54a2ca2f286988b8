"""``gradguard inspect --plot``: loss, gradient norms and update ratios against the step."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradguard.inspect.judge import Inspection, RunResult
from gradguard.inspect.logged import Logged
from gradguard.sinks import tags

__all__ = ["plot"]


def plot(inspection: Inspection, path: str) -> None:
    """Draws a PNG: per run, the loss, gradient norms and update ratios against the step.

    Gradient norms and update ratios are drawn per layer, the ratios against the healthy band;
    findings are marked at the steps they were seen.

    Args:
      inspection: What `inspect` returned.
      path: The PNG to write.

    Raises:
      ImportError: if matplotlib is not installed (``pip install matplotlib``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "gradguard inspect --plot needs matplotlib: pip install matplotlib (or, from a "
            "gradguard source checkout, pip install -e '.[plot]')."
        ) from e

    results = [r for r in inspection.results if r.has_gradguard]
    rows = max(len(results), 1)
    # Figure, not pyplot: no global state, no display needed.
    figure = Figure(figsize=(15, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 3, squeeze=False)
    if not results:
        axes[0][1].text(0.5, 0.5, "no gradguard scalars", ha="center", va="center")
    for row, result in zip(axes, results):
        _plot_run(row, result)
    figure.savefig(path, dpi=90)


def _plot_run(axes: Any, result: RunResult) -> None:
    run, logged = result.run, Logged(result.run)
    loss_ax, grad_ax, ratio_ax = axes
    loss = run.scalars.get(tags.LOSS)
    if loss is not None:
        loss_ax.plot(loss.steps, loss.values, color="black", lw=1.2, label="loss")
    loss_ax.set_title(f"{run.name}: loss")
    norm = run.scalars.get(tags.GRAD_NORM)
    if norm is not None:
        grad_ax.plot(norm.steps, _positive(norm.values), color="black", lw=1.5, label="global")
    for name in logged.groups:
        series = run.scalars.get(f"{tags.LAYER_GRAD_NORM}/{name}")
        if series is not None:
            grad_ax.plot(series.steps, _positive(series.values), lw=0.9, label=name)
    grad_ax.set_yscale("log")
    grad_ax.set_title("gradient norm per layer")
    ratio_ax.axhspan(1e-4, 1e-2, color="tab:green", alpha=0.15, label="healthy 1e-4..1e-2")
    for name in logged.groups:
        series = run.scalars.get(f"{tags.LAYER_UPDATE_RATIO}/{name}")
        if series is not None:
            ratio_ax.plot(series.steps, _positive(series.values), lw=0.9, marker=".", label=name)
    ratio_ax.set_yscale("log")
    ratio_ax.set_title("update / weight ratio per layer")
    marks: dict[int, set[str]] = {}
    for f in result.report.findings:
        marks.setdefault(f.step, set()).add(f.code)
    for ax in axes:
        ax.set_xlabel("step")
        for step, codes in sorted(marks.items()):
            ax.axvline(step, color="tab:red", ls="--", lw=0.8)
            ax.annotate(
                ", ".join(sorted(codes)),
                (step, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="tab:red",
            )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")


def _positive(values: np.ndarray) -> np.ndarray:
    # A log axis cannot show 0, NaN or Inf: leave a gap there.
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)
