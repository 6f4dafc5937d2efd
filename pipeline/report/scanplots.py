"""Per-scan QC figures: every region's fit with residuals, and a one-glance overview.

Both use fixed layouts (no layout engine, no tight bounding box): with one or two
figures per scan and ~30 axes each, layout engines would dominate the report's time.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.report.figures import COLORS, grid, used_mask

__all__ = ["plot_scan_fits", "plot_scan_overview"]


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
    nrows, ncols = grid(n_panels, ncols)
    # A fixed layout (no constrained layout, no tight bounding box): with ~30 axes per
    # figure and one figure per scan, layout engines would dominate the report's build time.
    # Rows per panel row: TACs, residuals, then an empty spacer for the tick labels/title.
    height = 2.9 * nrows + 0.4
    fig, axes = plt.subplots(3 * nrows, ncols, figsize=(2.6 * ncols, height),
                             sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.2, 0.9] * nrows})
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.55 / height, bottom=0.02,
                        hspace=0.08, wspace=0.28)
    for ax in axes[2::3].ravel():
        ax.set_visible(False)
    conditions = list(dict.fromkeys(fits["condition"].astype(str))) if "condition" in fits else [""]
    colors = dict(zip(conditions, COLORS, strict=False))
    mid = (fits["frame_start"] + fits["frame_end"]).to_numpy(float) / 120.0
    t_max = float(np.nanmax((fits["frame_end"]).to_numpy(float))) / 60.0
    ticks = np.arange(0, t_max + 1e-9, 30.0 if t_max > 60 else 10.0)
    used = used_mask(fits)
    measured = fits["measured"].to_numpy(float) / 1000.0
    fitted = fits["fitted"].to_numpy(float) / 1000.0
    region_col = fits["region"].astype(str).to_numpy()
    cond_col = fits["condition"].astype(str).to_numpy() if "condition" in fits else \
        np.full(len(fits), "")
    for i in range(nrows * ncols):
        ax, ax_res = axes[3 * (i // ncols), i % ncols], axes[3 * (i // ncols) + 1, i % ncols]
        ax_res.tick_params(labelbottom=True)
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
            ax.tick_params(labelbottom=True)
            ax.set_xticks(ticks)
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
    for ax in axes[1::3].ravel():
        ax.set_xticks(ticks)
    for ax in axes[-2]:
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


def _spread(values: list[float], gap: float) -> np.ndarray:
    """Label heights at least ``gap`` apart, as close to ``values`` as a sweep allows.

    Sorted upwards, each label is pushed above its lower neighbour when too close; the
    group is then shifted back so its mean height is unchanged.
    """
    y = np.nan_to_num(np.asarray(values, float))
    order = np.argsort(y)
    placed = y[order].copy()
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    placed -= placed.mean() - y.mean() if len(y) else 0.0
    out = np.empty_like(y)
    out[order] = placed
    return out


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
    used = used_mask(fits)
    region_col = fits["region"].astype(str).to_numpy()
    measured = fits["measured"].to_numpy(float) / 1000.0
    fitted = fits["fitted"].to_numpy(float) / 1000.0
    if "condition" in fits:
        spans = fits[used].assign(mid=mid[used]).groupby("condition", sort=False)["mid"]
        for k, (cond, times) in enumerate(spans):
            ax.axvspan(times.min(), times.max(), color=COLORS[k % len(COLORS)], alpha=0.07)
            ax.text(times.mean(), 1.01, str(cond), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color=COLORS[k % len(COLORS)])
    ends: list[tuple[float, str, Any]] = []  # last measured value, region, colour
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
        ends.append((measured[sel][first][-1], region, color))
    top = np.nanmax(measured) if np.isfinite(measured).any() else 1.0
    for y_label, (_, region, color) in zip(_spread([e[0] for e in ends], 0.045 * top), ends,
                                           strict=True):
        ax.annotate(region, (1.0, y_label), xycoords=("axes fraction", "data"),
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
    step = max(1, round(len(z.columns) / 7))  # about 7 labels: more overlap at this size
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
