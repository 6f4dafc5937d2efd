"""Figures of the patient-vs-control section: group differences with CIs, per-group values,
rating changes and rating-activation scatters.

Each ``plot_*`` takes tables and returns a matplotlib figure (render with
:func:`pipeline.report.figures.render`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.report.figures import COLORS, forest_plot, plt

__all__ = ["plot_group_differences", "plot_group_scatter", "plot_rating_changes"]


def plot_group_differences(table: pd.DataFrame, alpha: float = 0.05,
                           regions: Sequence[str] | None = None) -> Figure:
    """Difference of activation between groups (a - b) with 95% CI per region, one panel per
    contrast; filled markers pass FDR (``p_fdr < alpha``).

    Parameters
    ----------
    table : DataFrame
        Rows of ``group_differences.tsv`` for one model and one comparison.
    alpha : float, default=0.05
        FDR level of the filled markers.
    regions : sequence of str, default=None
        Row order (top to bottom); None = table order.

    Returns
    -------
    Figure
    """
    first = table.iloc[0]
    xlabel = f"{first['group_a']} - {first['group_b']}: release, % points (95% CI)"
    return forest_plot(table, estimate="difference", low="ci_low", high="ci_high",
                       xlabel=xlabel, alpha=alpha, regions=regions, panel_width=3.4,
                       bottom=0.7)


def _strip(ax, groups: Sequence[str], values: Sequence[np.ndarray]) -> None:
    """Points per group (jittered) with the mean and its 95% CI."""
    from scipy import stats

    rng = np.random.default_rng(0)  # the same jitter every time: reproducible figures
    for i, vals in enumerate(values):
        vals = np.asarray(vals, float)
        vals = vals[np.isfinite(vals)]
        color = COLORS[i % len(COLORS)]
        ax.plot(i + rng.uniform(-0.12, 0.12, vals.size), vals, "o", ms=4, alpha=0.6,
                color=color)
        if vals.size >= 2:
            half = stats.t.ppf(0.975, vals.size - 1) * vals.std(ddof=1) / np.sqrt(vals.size)
            ax.errorbar(i + 0.3, vals.mean(), yerr=half, fmt="s", color="k", ms=5, capsize=3)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(range(len(groups)), [f"{g}\n(n={np.isfinite(np.asarray(v, float)).sum()})"
                                       for g, v in zip(groups, values, strict=True)],
                  fontsize=8)
    ax.set_xlim(-0.5, len(groups) - 0.3)
    ax.tick_params(labelsize=7)


def plot_rating_changes(changes: pd.DataFrame, levels: Sequence[str]) -> Figure:
    """Rating change (condition - baseline) per participant by group, one panel per measure
    and contrast, with each group's mean and 95% CI (black squares).

    Parameters
    ----------
    changes : DataFrame
        ``group/rating_changes.tsv``.
    levels : sequence of str
        Groups in order (empty: one pooled column).
    """
    panels = list(changes.groupby(["measure", "contrast"], sort=False))
    ncols = min(len(panels), 4)
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols + 0.4, 2.7 * nrows),
                             squeeze=False, layout="constrained")
    for ax, ((measure, contrast), rows) in zip(axes.ravel(), panels, strict=False):
        groups = list(levels) or ["all"]
        values = [rows.loc[rows["group"].astype(str) == g, "rating_change"].to_numpy(float)
                  if levels else rows["rating_change"].to_numpy(float) for g in groups]
        _strip(ax, groups, values)
        ax.set_title(f"{measure}: {contrast}", fontsize=9)
        ax.set_ylabel("rating change", fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    return fig


def plot_group_scatter(xy: pd.DataFrame, xlabel: str, ylabel: str, annotation: str = "",
                       levels: Sequence[str] = ()) -> Figure:
    """Activation against a score, coloured by group, with each group's least-squares line.

    Parameters
    ----------
    xy : DataFrame
        ``x``, ``y`` and ``group`` per participant.
    xlabel, ylabel, annotation : str
    levels : sequence of str
        Groups in colour order; others are drawn grey.
    """
    from scipy import stats

    fig, ax = plt.subplots(figsize=(4.8, 3.9), layout="constrained")
    order = list(levels) + sorted(set(xy["group"].astype(str)) - set(levels))
    for i, level in enumerate(order):
        rows = xy[xy["group"].astype(str) == level]
        color = COLORS[i % len(COLORS)] if level in levels else "0.6"
        x, y = rows["x"].to_numpy(float), rows["y"].to_numpy(float)
        ax.plot(x, y, "o", ms=5, color=color, label=f"{level} (n={len(rows)})")
        if len(x) >= 3 and np.ptp(x) > 0:
            fit = stats.linregress(x, y)
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, fit.intercept + fit.slope * grid, "-", color=color, lw=1.3)
    ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    if annotation:
        ax.set_title(annotation, fontsize=8, loc="left")
    return fig
