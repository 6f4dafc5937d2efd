"""The report's figures, as matplotlib figures (Agg backend, no display needed).

Each ``plot_*`` function takes tables and returns a :class:`matplotlib.figure.Figure`;
:func:`render` turns one into bytes (SVG or PNG) for embedding and for the file written
next to the tables. Per-scan figures are in :mod:`pipeline.report.scanplots`.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

__all__ = [
    "COLORS",
    "forest_plot",
    "grid",
    "plot_change",
    "plot_correlation",
    "plot_paired",
    "plot_stat_map",
    "render",
    "used_mask",
]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_SVG_METADATA = {"Date": None}  # reproducible SVG bytes


def render(fig: Figure, fmt: str = "svg", dpi: int = 80) -> bytes:
    """The figure as SVG or PNG bytes; the figure is closed afterwards.

    Parameters
    ----------
    fig : Figure
        A matplotlib figure.
    fmt : {"svg", "png"}, default="svg"
        Output format.
    dpi : int, default=80
        Resolution of PNG output.
    """
    buffer = io.BytesIO()
    try:
        # Constrained layouts and fixed layouts already fit the canvas; a tight bounding
        # box would lay the figure out a second time.
        fixed = getattr(fig, "petbp_fixed_layout", False) or fig.get_layout_engine() is not None
        tight = None if fixed else "tight"
        fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches=tight,
                    metadata=_SVG_METADATA if fmt == "svg" else None)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def grid(n: int, ncols: int) -> tuple[int, int]:
    """(rows, columns) of a panel grid for ``n`` panels, at most ``ncols`` per row.

    Parameters
    ----------
    n : int
        Number of panels.
    ncols : int
        Most panels per row.
    """
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def used_mask(table: pd.DataFrame) -> np.ndarray:
    """The ``used`` column of a curve table as bool (True/1/yes, any case); all True if absent.

    Parameters
    ----------
    table : DataFrame
        A curve table (``*_fits.tsv``) or a subset of it.
    """
    if "used" not in table:
        return np.ones(len(table), bool)
    return table["used"].astype(str).str.lower().isin(["true", "1", "1.0", "yes"]).to_numpy()


def plot_paired(paired: pd.DataFrame, labels: tuple[str, str] = ("baseline", "condition"),
                regions: Sequence[str] | None = None, ncols: int = 5,
                columns: tuple[str, str] = ("baseline", "condition"),
                ylabel: str = "BP$_{ND}$") -> Figure:
    """Each subject's baseline and condition BP_ND joined by a line, one panel per region.

    Parameters
    ----------
    paired : DataFrame
        From :func:`pipeline.report.paired.paired_values` (one model).
    labels : (str, str)
        Axis labels of the two conditions.
    regions : sequence of str, default=None
        Regions to show, in order; None = all.
    ncols : int, default=5
    columns : (str, str), default=("baseline", "condition")
        The two columns of ``paired`` to join (e.g. the control contrast's % change and
        this contrast's, for a double difference).
    ylabel : str

    Returns
    -------
    Figure
        Grey lines: subjects (red when the second value is lower, i.e. activation);
        black: the mean.
    """
    present = list(dict.fromkeys(paired["region"]))
    regions = [r for r in regions if r in present] if regions is not None else present
    nrows, ncols = grid(len(regions), ncols)
    height = 2.4 * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, height), squeeze=False)
    # fixed margins (inches converted to fractions): a layout engine costs seconds here
    fig.subplots_adjust(left=0.55 / (2.2 * ncols), right=0.99, top=1 - 0.3 / height,
                        bottom=0.35 / height, wspace=0.35, hspace=0.4)
    fig.petbp_fixed_layout = True
    for ax, region in zip(axes.ravel(), regions, strict=False):
        rows = paired[paired["region"] == region]
        values = rows[list(columns)].to_numpy(float)
        for base, cond in values:
            ax.plot([0, 1], [base, cond], "-o", ms=3, lw=0.8, alpha=0.7,
                    color="#d62728" if cond < base else "0.55")
        if len(values):
            ax.plot([0, 1], np.nanmean(values, axis=0), "-s", ms=5, lw=2, color="k")
        ax.set_xticks([0, 1], labels, fontsize=8)
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(f"{region} (n={len(values)})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(regions):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(ylabel, fontsize=8)
    return fig


def change_ci(contrasts: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The tested % change and its confidence interval per row of a contrast table.

    Adds ``est``, ``lo`` and ``hi``: the effect (``effect_pct_mean``: change minus null
    drift or minus the control contrast's change) with ``mean_ci_low``/``mean_ci_high``
    when the table has them; else ``change_pct_mean`` +/- t(n-1) x SD / sqrt(n).
    """
    table = contrasts.copy()
    if {"effect_pct_mean", "mean_ci_low", "mean_ci_high"} <= set(table.columns):
        table["est"] = table["effect_pct_mean"]
        table["lo"], table["hi"] = table["mean_ci_low"], table["mean_ci_high"]
        return table
    table["est"] = table["change_pct_mean"]
    if {"change_pct_ci_low", "change_pct_ci_high"} <= set(table.columns):
        table["lo"], table["hi"] = table["change_pct_ci_low"], table["change_pct_ci_high"]
        return table
    n = table["n"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.ppf(0.5 + level / 2, n - 1) * table["change_pct_sd"].to_numpy(float) \
            / np.sqrt(n)
    table["lo"] = table["change_pct_mean"] - half
    table["hi"] = table["change_pct_mean"] + half
    return table


def plot_change(contrasts: pd.DataFrame, alpha: float = 0.05,
                regions: Sequence[str] | None = None) -> Figure:
    """Mean % change in BP_ND with 95% CI per region, one panel per contrast.

    When the table has the drift- or control-corrected effect (``effect_pct_mean``), that
    is drawn with its CI and the raw change as a grey cross.

    Parameters
    ----------
    contrasts : DataFrame
        Rows of ``contrasts.tsv`` for one model.
    alpha : float, default=0.05
        FDR level; filled markers have ``p_fdr < alpha``.
    regions : sequence of str, default=None
        Row order (top to bottom); None = table order.

    Returns
    -------
    Figure
        Negative change = BP_ND fell = activation (release).
    """
    table = change_ci(contrasts)
    xlabel = "% change in BP$_{ND}$ (95% CI)"
    if "effect_pct_mean" in table:
        xlabel = "% change - drift or control (95% CI)"
    return forest_plot(table, estimate="est", low="lo", high="hi", xlabel=xlabel,
                       alpha=alpha, regions=regions, raw="change_pct_mean")


def plot_correlation(xy: pd.DataFrame, xlabel: str, ylabel: str,
                     annotation: str = "", level: float = 0.95) -> Figure:
    """Scatter of activation against a score with the least-squares line and its CI band.

    Parameters
    ----------
    xy : DataFrame
        ``x`` (activation) and ``y`` (score) per subject.
    xlabel, ylabel : str
    annotation : str
        Text shown above the axes (r, p, n from ``correlations.tsv``).
    level : float, default=0.95
        Confidence level of the band around the fitted mean.

    Returns
    -------
    Figure
    """
    x, y = xy["x"].to_numpy(float), xy["y"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(4.6, 3.8), layout="constrained")
    ax.plot(x, y, "o", color=COLORS[0], ms=5)
    if len(x) >= 3 and np.ptp(x) > 0:
        fit = stats.linregress(x, y)
        grid = np.linspace(x.min(), x.max(), 100)
        resid = y - (fit.intercept + fit.slope * x)
        dof = len(x) - 2
        s = np.sqrt(np.sum(resid**2) / dof)
        se = s * np.sqrt(1 / len(x) + (grid - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
        half = stats.t.ppf(0.5 + level / 2, dof) * se
        line = fit.intercept + fit.slope * grid
        ax.fill_between(grid, line - half, line + half, color=COLORS[0], alpha=0.18, lw=0)
        ax.plot(grid, line, "-", color=COLORS[0], lw=1.5)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    if annotation:  # above the axes: inside, the box hid the highest points
        ax.set_title(annotation, fontsize=8, loc="left")
    return fig


def plot_stat_map(path, title: str = "", threshold: float | None = None) -> Figure:
    """A group map over the MNI152 template (nilearn), axial cuts.

    Parameters
    ----------
    path : path-like or Nifti1Image
        A 3D statistical map in MNI space.
    title : str
    threshold : float, default=None
        Values with smaller magnitude are transparent; None shows everything non-zero.
    """
    from nilearn import plotting

    fig = plt.figure(figsize=(11, 2.4))
    with warnings.catch_warnings():  # "empty mask" when nothing passes the threshold
        warnings.simplefilter("ignore", UserWarning)
        _draw_stat_map(plotting, path, fig, title, threshold)
    fig.petbp_fixed_layout = True
    return fig


def _draw_stat_map(plotting, path, fig: Figure, title: str, threshold: float | None) -> None:
    plotting.plot_stat_map(str(path) if not hasattr(path, "get_fdata") else path,
                           bg_img=_template(), threshold=threshold, display_mode="z",
                           cut_coords=(-24, -14, -4, 6, 16, 36), figure=fig,
                           title=title or None, colorbar=True, draw_cross=False,
                           annotate=True, resampling_interpolation="nearest")


@functools.cache
def _template():
    """nilearn's MNI152 T1 template at 2 mm (shipped with nilearn: no download)."""
    from nilearn.datasets import load_mni152_template

    return load_mni152_template(resolution=2)


def forest_plot(table: pd.DataFrame, *, estimate: str, low: str, high: str, xlabel: str,
                alpha: float = 0.05, regions: Sequence[str] | None = None,
                raw: str | None = None, panel_width: float = 3.6,
                bottom: float = 0.6) -> Figure:
    """Estimates with CIs per region (rows), one panel per contrast.

    Parameters
    ----------
    table : DataFrame
        ``contrast`` and ``region`` columns, the estimate and its CI limits, and optionally
        ``p_fdr`` (filled markers have ``p_fdr < alpha``).
    estimate, low, high : str
        Columns of the estimate and its CI limits (plotted units as in ``xlabel``).
    xlabel : str
        The x axis label.
    alpha : float, default=0.05
        FDR level of the filled markers.
    regions : sequence of str, default=None
        Row order (top to bottom); None = table order.
    raw : str, default=None
        A column drawn as a grey cross where it differs from the estimate.
    panel_width : float, default=3.6
        Inches per panel.
    bottom : float, default=0.6
        Inches below the panels (the x label).

    Returns
    -------
    Figure
    """
    names = list(dict.fromkeys(table["contrast"].astype(str)))
    present = list(dict.fromkeys(table["region"].astype(str)))
    regions = [r for r in regions if r in present] + [r for r in present if r not in regions] \
        if regions is not None else present
    width, height = panel_width * len(names) + 1.0, 0.32 * len(regions) + 0.8 + bottom
    fig, axes = plt.subplots(1, len(names), figsize=(width, height), squeeze=False,
                             sharey=True)
    label_in = 0.08 * max(len(r) for r in regions) + 0.2  # room for the region names
    fig.subplots_adjust(left=label_in / width, right=0.99, top=1 - 0.35 / height,
                        bottom=bottom / height, wspace=0.08)
    fig.petbp_fixed_layout = True
    y = {r: i for i, r in enumerate(regions)}
    for ax, name, color in zip(axes[0], names, COLORS, strict=False):
        rows = table[table["contrast"].astype(str) == name]
        pos = rows["region"].astype(str).map(y).to_numpy(float)
        est = rows[estimate].to_numpy(float)
        if raw is not None:
            values = rows[raw].to_numpy(float)
            if not np.allclose(values, est, equal_nan=True):
                ax.plot(values, pos, "x", color="0.45", ms=5)  # explained in the caption
        ax.hlines(pos, rows[low], rows[high], color=color, lw=1.5)
        sig = np.zeros_like(pos, bool)
        if "p_fdr" in rows:
            sig = rows["p_fdr"].to_numpy(float) < alpha
        ax.plot(est[sig], pos[sig], "o", color=color, ms=6)
        ax.plot(est[~sig], pos[~sig], "o", mfc="white", color=color, ms=6)
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(range(len(regions)), regions)
    axes[0][0].invert_yaxis()
    return fig
