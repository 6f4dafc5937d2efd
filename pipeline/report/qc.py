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
#: ``frame_z``: robust z (median over regions) above which a frame looks like motion.
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


def _with_z(fits: pd.DataFrame) -> pd.DataFrame:
    """Fitted rows with the robust z of their relative residual within each region.

    Relative residuals (measured / fitted - 1) are pooled over a region's condition
    windows, so that the scale comes from all its fitted frames, not from a handful.
    """
    used = _used(fits).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        used["resid"] = np.where(used["fitted"] != 0, used["measured"] / used["fitted"] - 1, 0.0)
    centre = used.groupby("region")["resid"].transform("median")
    mad = (used["resid"] - centre).abs().groupby(used["region"]).transform("median")
    scale = _MAD_SCALE * mad.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        used["z"] = np.where(scale > 0, (used["resid"] - centre).to_numpy() / scale, 0.0)
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
    """Robust z of each frame's residuals across regions: motion-like frames stand out.

    Each region's relative residuals (measured / fitted - 1, fitted frames only) are
    centred on their median and scaled by 1.4826 x MAD. A frame is flagged when the median
    z over regions exceeds ``z_threshold`` in size: more than half of the regions are off
    in the same direction at once, as after head motion or a bad frame, which noise in
    single regions rarely does.

    Parameters
    ----------
    fits : DataFrame
        Long fit table.
    z_threshold : float, default=3.5
        Robust z (unitless) beyond which a residual is an outlier.

    Returns
    -------
    DataFrame
        One row per fitted frame and window: ``frame_start``, ``frame_end`` (s),
        ``condition``, ``median_z``, ``n_outlying``, ``n_regions``, ``flagged``.
    """
    used = _with_z(fits)
    used["outlying"] = used["z"].abs() > z_threshold
    frame_keys = ["frame_start", "frame_end", *(["condition"] if "condition" in used else [])]
    frames = used.groupby(frame_keys, sort=True).agg(
        median_z=("z", "median"), n_outlying=("outlying", "sum"),
        n_regions=("z", "size")).reset_index()
    frames["flagged"] = frames["median_z"].abs() > z_threshold
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
            f" (median robust z {row['median_z']:.1f}, {int(row['n_outlying'])} of "
            f"{int(row['n_regions'])} region fits beyond {limits['frame_z']:g})")
    return ScanQC(quality, frames, messages)
