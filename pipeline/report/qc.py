"""Quality flags of one scan's fits: failed or boundary fits, high residuals, frame outliers.

Works on the long fit table each region fit writes (``<stem>_model-<model>_fits.tsv``:
``frame_start``, ``frame_end`` in seconds, ``region``, ``condition``, ``measured`` and
``fitted`` in Bq/mL, ``used``) and on the region table (``_bp.tsv``) with its ``flags``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ScanQC",
    "fit_quality",
    "frame_outliers",
    "residual_z",
    "scan_qc",
]

#: ``nrmse``: residual RMS / mean activity above which a fit is flagged;
#: ``frame_z``: robust z of residual jumps (median over regions) above which a frame
#: looks like motion.
DEFAULT_THRESHOLDS: dict[str, float] = {"nrmse": 0.10, "frame_z": 3.5}

_MAD_SCALE = 1.4826  # MAD of a normal sample times this estimates its SD


def _used(fits: pd.DataFrame) -> pd.DataFrame:
    used = fits["used"] if "used" in fits else pd.Series(True, index=fits.index)
    used = used.astype(str).str.lower().isin(["true", "1", "1.0", "yes"])
    ok = used & np.isfinite(fits["measured"]) & np.isfinite(fits["fitted"])
    return fits[ok]


def fit_quality(fits: pd.DataFrame) -> pd.DataFrame:
    """Residual size per region and condition window.

    Parameters
    ----------
    fits : DataFrame
        Long fit table (see module docstring).

    Returns
    -------
    DataFrame
        ``region``, ``condition``, ``n_frames`` (frames fitted), ``rmse`` (Bq/mL) and
        ``nrmse`` (rmse / mean measured activity over fitted frames, unitless).
    """
    used = _used(fits).assign(sq=lambda d: (d["measured"] - d["fitted"]) ** 2)
    keys = ["region", "condition"] if "condition" in used else ["region"]
    grouped = used.groupby(keys, sort=False)
    quality = grouped.agg(n_frames=("sq", "size"), mse=("sq", "mean"),
                          mean_activity=("measured", "mean")).reset_index()
    quality["rmse"] = np.sqrt(quality["mse"])
    with np.errstate(divide="ignore", invalid="ignore"):
        quality["nrmse"] = quality["rmse"] / quality["mean_activity"].abs()
    return quality.drop(columns=["mse", "mean_activity"])


def _robust_z(values: pd.Series, groups: pd.Series) -> np.ndarray:
    centre = values.groupby(groups).transform("median")
    mad = (values - centre).abs().groupby(groups).transform("median")
    scale = _MAD_SCALE * mad.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, (values - centre).to_numpy() / scale, 0.0)


def _with_z(fits: pd.DataFrame) -> pd.DataFrame:
    """Fitted rows with robust z of their relative residual (``z``) and of its jump (``jump_z``).

    Relative residuals (measured / fitted - 1) are pooled over a region's condition
    windows, so that the scale comes from all its fitted frames, not from a handful.
    The jump is a frame's residual minus the mean of its neighbours' (within its window):
    a smooth misfit of the model cancels, a single bad frame does not.
    """
    used = _used(fits).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        used["resid"] = np.where(used["fitted"] != 0, used["measured"] / used["fitted"] - 1, 0.0)
    keys = ["region", "condition"] if "condition" in used else ["region"]
    used = used.sort_values([*keys, "frame_start"], kind="stable")
    grouped = used.groupby(keys, sort=False)["resid"]
    before, after = grouped.shift(1), grouped.shift(-1)
    neighbours = pd.concat([before, after], axis=1).mean(axis=1)  # one neighbour at the ends
    used["jump"] = used["resid"] - neighbours.fillna(used["resid"])
    used["z"] = _robust_z(used["resid"], used["region"])
    used["jump_z"] = _robust_z(used["jump"], used["region"])
    return used


def residual_z(fits: pd.DataFrame) -> pd.DataFrame:
    """Robust z of residuals as a region x frame mid-time (min) matrix.

    Parameters
    ----------
    fits : DataFrame
        Long fit table.

    Returns
    -------
    DataFrame
        Rows: regions (in table order); columns: frame mid-times in minutes; NaN where
        a frame was not fitted (a frame fitted in two windows shows their mean).
    """
    z = _with_z(fits)
    z["mid"] = ((z["frame_start"] + z["frame_end"]) / 120.0).round(3)
    table = z.pivot_table(index="region", columns="mid", values="z", aggfunc="mean")
    order = [r for r in dict.fromkeys(fits["region"].astype(str)) if r in table.index]
    return table.loc[order]


def frame_outliers(fits: pd.DataFrame, z_threshold: float = 3.5) -> pd.DataFrame:
    """Frames whose residuals jump in most regions at once: motion-like outliers.

    For each region, the jump of a frame's relative residual (measured / fitted - 1)
    over the mean of its neighbouring frames is turned into a robust z (median and
    1.4826 x MAD over the region's fitted frames). A frame is flagged when the median of
    these z over regions exceeds ``z_threshold`` in size and is larger than at both
    neighbouring frames: more than half of the regions jump the same way at once, as
    after head motion or a bad frame. Smooth misfit of the model (all regions off over
    several frames) is not a jump and is left to the NRMSE flag; the first and last
    frame of each window are never flagged (one neighbour only, and models often misfit
    the first frames after t*).

    Parameters
    ----------
    fits : DataFrame
        Long fit table.
    z_threshold : float, default=3.5
        Robust z (unitless) beyond which a residual jump is an outlier.

    Returns
    -------
    DataFrame
        One row per fitted frame and window: ``frame_start``, ``frame_end`` (s),
        ``condition``, ``median_z`` (of the jumps), ``n_outlying``, ``n_regions``,
        ``flagged``.
    """
    used = _with_z(fits)
    used["outlying"] = used["jump_z"].abs() > z_threshold
    frame_keys = ["frame_start", "frame_end", *(["condition"] if "condition" in used else [])]
    frames = used.groupby(frame_keys, sort=True).agg(
        median_z=("jump_z", "median"), n_outlying=("outlying", "sum"),
        n_regions=("jump_z", "size")).reset_index()
    size = frames["median_z"].abs()
    series = frames.groupby(frame_keys[2:], sort=False)["median_z"] if len(frame_keys) > 2 \
        else frames["median_z"]
    prev = series.shift(1).abs().fillna(0.0) if len(frame_keys) > 2 else size.shift(1).fillna(0)
    nxt = series.shift(-1).abs().fillna(0.0) if len(frame_keys) > 2 else size.shift(-1).fillna(0)
    # A window's first and last frames have one neighbour only, and models often misfit
    # the start of a window (Logan, MRTM just after t*): they are not flagged.
    edge = (prev.index.isin(prev[series.shift(1).isna()].index)
            | nxt.index.isin(nxt[series.shift(-1).isna()].index)) if len(frame_keys) > 2 \
        else np.isin(np.arange(len(frames)), [0, len(frames) - 1])
    frames["flagged"] = (size > z_threshold) & (size >= prev) & (size >= nxt) & ~edge
    return frames


@dataclass
class ScanQC:
    """Quality summary of one scan and model.

    Attributes
    ----------
    quality : DataFrame
        From :func:`fit_quality`.
    frames : DataFrame
        From :func:`frame_outliers`.
    messages : list of str
        One line per problem found, for the report (empty: nothing to look at).
    """

    quality: pd.DataFrame
    frames: pd.DataFrame
    messages: list[str] = field(default_factory=list)


def scan_qc(fits: pd.DataFrame, bp: pd.DataFrame | None = None,
            thresholds: Mapping[str, float] | None = None) -> ScanQC:
    """Flags for one scan: fit flags from the region table, high residuals, frame outliers.

    Parameters
    ----------
    fits : DataFrame
        Long fit table of the scan and model.
    bp : DataFrame, default=None
        The scan's region table (``_bp.tsv``) with its ``flags`` column.
    thresholds : mapping, default=None
        Overrides of :data:`DEFAULT_THRESHOLDS`.

    Returns
    -------
    ScanQC
    """
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    quality = fit_quality(fits)
    frames = frame_outliers(fits, limits["frame_z"])
    messages = []
    if bp is not None and "flags" in bp:
        flags = bp["flags"].astype(object).where(bp["flags"].notna(), "")
        flagged = bp[flags.astype(str).str.strip() != ""]
        for _, row in flagged.iterrows():
            where = row["region"] + (f" ({row['condition']})" if "condition" in row else "")
            messages.append(f"fit flag {row['flags']}: {where}")
        if "bp_nd" in bp:
            failed = bp[~np.isfinite(pd.to_numeric(bp["bp_nd"], errors="coerce"))]
            messages.extend(f"no BP_ND estimate: {r}" for r in failed["region"].astype(str))
    high = quality[quality["nrmse"] > limits["nrmse"]]
    for _, row in high.iterrows():
        where = row["region"] + (f" ({row['condition']})" if "condition" in row else "")
        messages.append(f"high residuals: {where}, NRMSE {row['nrmse']:.3f} "
                        f"> {limits['nrmse']:g}")
    for _, row in frames[frames["flagged"]].iterrows():
        messages.append(
            f"motion-like frame outlier: {row['frame_start'] / 60:g}-{row['frame_end'] / 60:g} min"
            f" (median robust z of residual jumps {row['median_z']:.1f}; "
            f"{int(row['n_outlying'])} of {int(row['n_regions'])} region fits beyond "
            f"{limits['frame_z']:g})")
    return ScanQC(quality, frames, messages)
