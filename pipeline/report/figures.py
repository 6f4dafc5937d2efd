"""The report's figures, as matplotlib figures (Agg backend, no display needed).

Each ``plot_*`` function takes tables and returns a :class:`matplotlib.figure.Figure`;
:func:`render` turns one into bytes (SVG or PNG) for embedding and for the file written
next to the tables.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

__all__ = [
    "plot_change",
    "plot_correlation",
    "plot_paired",
    "plot_scan_fits",
    "plot_scan_overview",
    "plot_stat_map",
    "render",
]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_SVG_METADATA = {"Date": None}  # reproducible SVG bytes


def render(fig: Figure, fmt: str = "svg", dpi: int = 80) -> bytes:
    """The figure as SVG or PNG bytes; the figure is closed afterwards."""
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


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def _used_mask(table: pd.DataFrame) -> np.ndarray:
    if "used" not in table:
        return np.ones(len(table), bool)
    return table["used"].astype(str).str.lower().isin(["true", "1", "1.0", "yes"]).to_numpy()


def plot_scan_fits(fits: pd.DataFrame, reference: tuple[str, pd.DataFrame] | None = None,
                   title: str = "", ncols: int = 4) -> Figure:
    """Measured and fitted TACs of every region, one panel each, with residuals below.

    Parameters
    ----------
    fits : DataFrame
        Long fit table: ``frame_start``, ``frame_end`` (s), ``region``, ``condition``,
        ``measured``, ``fitted`` (Bq/mL), ``used``.
    reference : (str, DataFrame), default=None
        Reference region name and a table with ``frame_start``, ``frame_end`` (s) and
        the reference TAC in a column of that name; drawn in its own panel.
    title : str
        Figure title.
    ncols : int, default=4
        Panels per row.

    Returns
    -------
    Figure
        Minutes on x, kBq/mL on y; hollow points are frames outside the fit window;
        one colour per condition window.
    """
    regions = list(dict.fromkeys(fits["region"].astype(str)))
    n_panels = len(regions) + (reference is not None)
    nrows, ncols = _grid(n_panels, ncols)
    # A fixed layout (no constrained layout, no tight bounding box): with ~30 axes per
    # figure and one figure per scan, layout engines would dominate the report's build time.
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(2.6 * ncols, 2.3 * nrows + 0.6),
                             sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.2] * nrows})
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.55 / (2.3 * nrows + 0.6),
                        bottom=0.35 / (2.3 * nrows + 0.6), hspace=0.08, wspace=0.28)
    conditions = list(dict.fromkeys(fits["condition"].astype(str))) if "condition" in fits else [""]
    colors = dict(zip(conditions, _COLORS, strict=False))
    mid = (fits["frame_start"] + fits["frame_end"]).to_numpy(float) / 120.0
    t_max = float(np.nanmax((fits["frame_end"]).to_numpy(float))) / 60.0
    ticks = np.arange(0, t_max + 1e-9, 30.0 if t_max > 60 else 10.0)
    used = _used_mask(fits)
    measured = fits["measured"].to_numpy(float) / 1000.0
    fitted = fits["fitted"].to_numpy(float) / 1000.0
    region_col = fits["region"].astype(str).to_numpy()
    cond_col = fits["condition"].astype(str).to_numpy() if "condition" in fits else \
        np.full(len(fits), "")
    for i in range(nrows * ncols):
        ax, ax_res = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        if i >= n_panels:
            ax.set_visible(False)
            ax_res.set_visible(False)
            continue
        ax.yaxis.set_major_locator(MaxNLocator(3))
        ax_res.yaxis.set_major_locator(MaxNLocator(2))
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax_res.tick_params(labelsize=6, length=2, pad=1)
        if i == len(regions):  # the reference panel
            name, table = reference
            t = (table["frame_start"] + table["frame_end"]).to_numpy(float) / 120.0
            ax.plot(t, table[name].to_numpy(float) / 1000.0, "o-", ms=2, lw=0.8, color="0.3")
            ax.set_title(f"{name} (reference)", fontsize=8, pad=2)
            ax_res.set_visible(False)
            continue
        region = regions[i]
        in_region = region_col == region
        for cond in conditions:
            sel = in_region & (cond_col == cond)
            t, y, f, u = mid[sel], measured[sel], fitted[sel], used[sel]
            color = colors[cond]
            ax.plot(t[~u], y[~u], "o", ms=2, mfc="none", mew=0.5, color="0.65")
            ax.plot(t[u], y[u], "o", ms=2, color=color)
            ax.plot(t[u], f[u], "-", lw=1.1, color=color)
            ax_res.plot(t[u], y[u] - f[u], "o-", ms=1.5, lw=0.5, color=color)
        ax_res.axhline(0, color="0.4", lw=0.5)
        ax.set_title(region, fontsize=8, pad=2)
    for ax in axes[-1]:
        ax.set_xticks(ticks)
        ax.set_xlabel("min", fontsize=7, labelpad=1)
    axes[0, 0].set_ylabel("kBq/mL", fontsize=7)
    axes[1, 0].set_ylabel("resid.", fontsize=7)
    if conditions != [""]:
        handles = [plt.Line2D([], [], color=colors[c], marker="o", ms=3, label=c)
                   for c in conditions]
        fig.legend(handles=handles, loc="upper right", fontsize=7, ncols=len(handles),
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.petbp_fixed_layout = True  # tells render() not to compute a tight bounding box
    return fig


def plot_scan_overview(fits: pd.DataFrame, frames_qc: pd.DataFrame | None = None,
                       reference: tuple[str, pd.DataFrame] | None = None,
                       title: str = "", z_limit: float = 5.0) -> Figure:
    """All regions of one scan in two panels: TACs with fits, and a residual heat map.

    Parameters
    ----------
    fits : DataFrame
        Long fit table (see :func:`plot_scan_fits`).
    frames_qc : DataFrame, default=None
        :func:`pipeline.report.qc.frame_outliers` output; flagged frames get a marker.
    reference : (str, DataFrame), default=None
        Reference region name and its TAC table (seconds, Bq/mL), drawn dashed black.
    title : str
    z_limit : float, default=5.0
        Colour range of the robust z of residuals (unitless).

    Returns
    -------
    Figure
        Left: measured points and fitted lines of every region (one colour per region),
        condition windows shaded. Right: robust z of each region's residuals per frame
        (a vertical stripe = a frame off in every region, as after motion).
    """
    from pipeline.report.qc import residual_z

    regions = list(dict.fromkeys(fits["region"].astype(str)))
    fig, (ax, ax_z) = plt.subplots(1, 2, figsize=(11, 3.4), width_ratios=(1.15, 1))
    fig.subplots_adjust(left=0.06, right=0.93, top=0.86, bottom=0.15, wspace=0.42)
    cmap = plt.get_cmap("tab20")
    mid = (fits["frame_start"] + fits["frame_end"]).to_numpy(float) / 120.0
    used = _used_mask(fits)
    region_col = fits["region"].astype(str).to_numpy()
    measured = fits["measured"].to_numpy(float) / 1000.0
    fitted = fits["fitted"].to_numpy(float) / 1000.0
    if "condition" in fits:
        spans = fits[used].assign(mid=mid[used]).groupby("condition", sort=False)["mid"]
        for k, (cond, times) in enumerate(spans):
            ax.axvspan(times.min(), times.max(), color=_COLORS[k % len(_COLORS)], alpha=0.07)
            ax.text(times.mean(), 1.01, str(cond), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color=_COLORS[k % len(_COLORS)])
    for i, region in enumerate(regions):
        sel = region_col == region
        color = cmap(i % 20)
        first = np.unique(mid[sel], return_index=True)[1]
        ax.plot(mid[sel][first], measured[sel][first], "o", ms=2, color=color)
        fit_sel = sel & used & np.isfinite(fitted)
        if "condition" in fits:
            for cond in dict.fromkeys(fits["condition"][fit_sel].astype(str)):
                part = fit_sel & (fits["condition"].astype(str).to_numpy() == cond)
                ax.plot(mid[part], fitted[part], "-", lw=0.9, color=color)
        else:
            ax.plot(mid[fit_sel], fitted[fit_sel], "-", lw=0.9, color=color)
        ax.annotate(region, (1.0, measured[sel][first][-1]), xycoords=("axes fraction", "data"),
                    xytext=(2, 0), textcoords="offset points", fontsize=6, color=color,
                    va="center", annotation_clip=False)
    if reference is not None:
        name, table = reference
        t = (table["frame_start"] + table["frame_end"]).to_numpy(float) / 120.0
        ax.plot(t, table[name].to_numpy(float) / 1000.0, "--", lw=1.2, color="k",
                label=f"{name} (reference)")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_xlabel("minutes", fontsize=8)
    ax.set_ylabel("kBq/mL", fontsize=8)
    ax.tick_params(labelsize=7)
    z = residual_z(fits)
    image = ax_z.imshow(z.to_numpy(float), aspect="auto", cmap="RdBu_r", vmin=-z_limit,
                        vmax=z_limit, interpolation="nearest")
    ax_z.set_yticks(range(len(z.index)), list(z.index), fontsize=6)
    step = max(1, len(z.columns) // 10)
    ax_z.set_xticks(range(0, len(z.columns), step),
                    [f"{c:g}" for c in z.columns[::step]], fontsize=6)
    ax_z.set_xlabel("frame mid-time (min)", fontsize=8)
    if frames_qc is not None and len(frames_qc) and frames_qc["flagged"].any():
        mids = ((frames_qc["frame_start"] + frames_qc["frame_end"]) / 120.0).round(3)
        cols = {round(float(c), 3): j for j, c in enumerate(z.columns)}
        hits = sorted({cols[m] for m in mids[frames_qc["flagged"].to_numpy()] if m in cols})
        ax_z.plot(hits, [-0.9] * len(hits), "v", color="k", ms=6, clip_on=False)
    bar = fig.colorbar(image, ax=ax_z, fraction=0.04, pad=0.02)
    bar.set_label("robust z of residual", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    ax_z.set_title("residuals (triangles: motion-like frames)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.petbp_fixed_layout = True
    return fig


def plot_paired(paired: pd.DataFrame, labels: tuple[str, str] = ("baseline", "condition"),
                regions: Sequence[str] | None = None, ncols: int = 5) -> Figure:
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

    Returns
    -------
    Figure
        Grey lines: subjects (red when BP_ND fell, i.e. activation); black: the mean.
    """
    present = list(dict.fromkeys(paired["region"]))
    regions = [r for r in regions if r in present] if regions is not None else present
    nrows, ncols = _grid(len(regions), ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.4 * nrows),
                             squeeze=False, layout="constrained")
    for ax, region in zip(axes.ravel(), regions, strict=False):
        rows = paired[paired["region"] == region]
        values = rows[["baseline", "condition"]].to_numpy(float)
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
        row[0].set_ylabel("BP$_{ND}$", fontsize=8)
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


def plot_change(contrasts: pd.DataFrame, alpha: float = 0.05) -> Figure:
    """Mean % change in BP_ND with 95% CI per region, one panel per contrast.

    When the table has the drift- or control-corrected effect (``effect_pct_mean``), that
    is drawn with its CI and the raw change as a grey cross.

    Parameters
    ----------
    contrasts : DataFrame
        Rows of ``contrasts.tsv`` for one model.
    alpha : float, default=0.05
        FDR level; filled markers have ``p_fdr < alpha``.

    Returns
    -------
    Figure
        Negative change = BP_ND fell = activation (release).
    """
    table = change_ci(contrasts)
    xlabel = "% change in BP$_{ND}$ (95% CI)"
    if "effect_pct_mean" in table:
        xlabel = "% change - drift or control (95% CI)"
    names = list(dict.fromkeys(table["contrast"].astype(str)))
    regions = list(dict.fromkeys(table["region"].astype(str)))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 0.32 * len(regions) + 1.4),
                             squeeze=False, sharey=True, layout="constrained")
    y = {r: i for i, r in enumerate(regions)}
    for ax, name, color in zip(axes[0], names, _COLORS, strict=False):
        rows = table[table["contrast"].astype(str) == name]
        pos = rows["region"].astype(str).map(y).to_numpy(float)
        mean = rows["est"].to_numpy(float)
        raw = rows["change_pct_mean"].to_numpy(float)
        if not np.allclose(raw, mean, equal_nan=True):
            ax.plot(raw, pos, "x", color="0.45", ms=5, label="raw change")
            ax.legend(fontsize=7, loc="lower left", frameon=False)
        ax.hlines(pos, rows["lo"], rows["hi"], color=color, lw=1.5)
        sig = np.zeros_like(pos, bool)
        if "p_fdr" in rows:
            sig = rows["p_fdr"].to_numpy(float) < alpha
        ax.plot(mean[sig], pos[sig], "o", color=color, ms=6)
        ax.plot(mean[~sig], pos[~sig], "o", mfc="white", color=color, ms=6)
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(range(len(regions)), regions)
    axes[0][0].invert_yaxis()
    return fig


def plot_correlation(xy: pd.DataFrame, xlabel: str, ylabel: str,
                     annotation: str = "", level: float = 0.95) -> Figure:
    """Scatter of activation against a score with the least-squares line and its CI band.

    Parameters
    ----------
    xy : DataFrame
        ``x`` (activation) and ``y`` (score) per subject.
    xlabel, ylabel : str
    annotation : str
        Text put in the corner (r, p, n from ``correlations.tsv``).
    level : float, default=0.95
        Confidence level of the band around the fitted mean.

    Returns
    -------
    Figure
    """
    x, y = xy["x"].to_numpy(float), xy["y"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(4.6, 3.8), layout="constrained")
    ax.plot(x, y, "o", color=_COLORS[0], ms=5)
    if len(x) >= 3 and np.ptp(x) > 0:
        fit = stats.linregress(x, y)
        grid = np.linspace(x.min(), x.max(), 100)
        resid = y - (fit.intercept + fit.slope * x)
        dof = len(x) - 2
        s = np.sqrt(np.sum(resid**2) / dof)
        se = s * np.sqrt(1 / len(x) + (grid - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
        half = stats.t.ppf(0.5 + level / 2, dof) * se
        line = fit.intercept + fit.slope * grid
        ax.fill_between(grid, line - half, line + half, color=_COLORS[0], alpha=0.18, lw=0)
        ax.plot(grid, line, "-", color=_COLORS[0], lw=1.5)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    if annotation:
        ax.text(0.02, 0.98, annotation, transform=ax.transAxes, va="top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
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
    plotting.plot_stat_map(str(path) if not hasattr(path, "get_fdata") else path,
                           bg_img=_template(), threshold=threshold, display_mode="z",
                           cut_coords=(-24, -14, -4, 6, 16, 36), figure=fig,
                           title=title or None, colorbar=True, draw_cross=False,
                           annotate=True, resampling_interpolation="nearest")
    fig.petbp_fixed_layout = True
    return fig


@functools.cache
def _template():
    """nilearn's MNI152 T1 template at 2 mm (shipped with nilearn: no download)."""
    from nilearn.datasets import load_mni152_template

    return load_mni152_template(resolution=2)
