"""Score scanner-space preprocessing against the simulator's truth, and compare analyses.

- :func:`motion_error`: estimated vs true head motion of a scan (mm, RMS over brain points
  and frames, after removing the constant offset between the two: the estimate is relative
  to its own reference, the truth to the pose at scan start);
- :func:`mapping_error`: where each frame's voxels land in MNI, estimated chain (motion,
  coregistration, normalization) vs truth (mm);
- :func:`compare_bp`: regional BP_ND of two analyses of the same study (percent differences
  per scan, window and region, and within-scan changes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.simulate.scanner_study import ScannerTruth

__all__ = ["BpComparison", "compare_bp", "mapping_error", "motion_error"]


def _apply(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.column_stack([points, np.ones(len(points))])
    return np.einsum("nij,pj->npi", np.asarray(matrices, float), homogeneous)[..., :3]


def motion_error(frame_from_reference: np.ndarray, truth_motion: np.ndarray,
                 points: np.ndarray) -> np.ndarray:
    """Per-frame RMS error (mm) of estimated motion over ``points`` (n, 3), scanner mm.

    Both are turned into displacement fields at the points (``T_k x - x``); their difference
    minus its mean over frames (the constant reference offset, to first order) is the error.

    Parameters
    ----------
    frame_from_reference : ndarray of shape (n_frames, 4, 4)
        Estimated motion, scanner mm.
    truth_motion : ndarray of shape (n_frames, 4, 4)
        Simulated motion, scanner mm.
    points : ndarray of shape (n, 3)
        Points where displacements are compared (e.g. brain voxels), scanner mm.

    Returns
    -------
    ndarray of shape (n_frames,)
        mm; the overall RMS is ``sqrt(mean(error ** 2))``.
    """
    points = np.asarray(points, float)
    diff = (_apply(frame_from_reference, points) - _apply(truth_motion, points))
    diff -= diff.mean(axis=0, keepdims=True)
    return np.sqrt((diff ** 2).sum(axis=2).mean(axis=1))


def mapping_error(truth: ScannerTruth, mni_from_t1, t1_from_pet: np.ndarray,
                  frame_from_reference: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per-frame RMS distance (mm) between estimated and true MNI positions of ``points``
    (scanner mm): the error that places atlas regions in each frame.

    Parameters
    ----------
    truth : ScannerTruth
    mni_from_t1 : CoordinateField
    t1_from_pet : ndarray of shape (4, 4)
    frame_from_reference : ndarray of shape (n_frames, 4, 4)
    points : ndarray of shape (n, 3)

    Returns
    -------
    ndarray of shape (n_frames,)
    """
    out = []
    for k, matrix in enumerate(np.asarray(frame_from_reference, float)):
        chain = t1_from_pet @ np.linalg.inv(matrix)
        t1 = points @ chain[:3, :3].T + chain[:3, 3]
        diff = mni_from_t1(t1) - truth.mni_from_frame(k, points)
        out.append(np.sqrt((diff ** 2).sum(axis=1).mean()))
    return np.asarray(out)


class BpComparison:
    """BP_ND of a test analysis against a reference analysis of the same study.

    Attributes
    ----------
    table : DataFrame
        One row per scan, window and region: ``bp_test``, ``bp_ref``, ``pct`` (100 (test -
        ref) / ref).
    changes : DataFrame
        One row per scan and region: ``change_test``, ``change_ref`` (100 (late - early) /
        early, % points) and ``error`` (their difference, points).
    """

    def __init__(self, table: pd.DataFrame, changes: pd.DataFrame) -> None:
        self.table, self.changes = table, changes

    def summary(self) -> dict[str, float]:
        """Median and 90th percentile of |pct|, and of |change error| (points)."""
        pct = self.table["pct"].abs()
        err = self.changes["error"].abs() if len(self.changes) else pd.Series(dtype=float)
        return {"n_bp": int(pct.size), "bp_median_abs_pct": float(pct.median()),
                "bp_p90_abs_pct": float(pct.quantile(0.9)), "bp_max_abs_pct": float(pct.max()),
                "n_changes": int(err.size),
                "change_median_abs_err": float(err.median()) if err.size else float("nan"),
                "change_p90_abs_err": float(err.quantile(0.9)) if err.size else float("nan")}


def compare_bp(test: pd.DataFrame, reference: pd.DataFrame, *, keys: tuple[str, ...] = (
        "participant_id", "task", "region"), window: str = "window_start",
               value: str = "bp_nd") -> BpComparison:
    """Compare two long tables of regional BP_ND (same keys, a window column).

    Parameters
    ----------
    test, reference : DataFrame
        Columns ``keys``, ``window`` (window start, minutes) and ``value``.
    keys : tuple of str
    window : str, default="window_start"
    value : str, default="bp_nd"

    Returns
    -------
    BpComparison
        Changes are computed for scans with exactly two windows (early, late).
    """
    on = [*keys, window]
    merged = test[[*on, value]].merge(reference[[*on, value]], on=on,
                                      suffixes=("_test", "_ref"), validate="one_to_one")
    merged = merged.rename(columns={f"{value}_test": "bp_test", f"{value}_ref": "bp_ref"})
    merged["pct"] = 100.0 * (merged["bp_test"] - merged["bp_ref"]) / merged["bp_ref"]
    rows = []
    for key, group in merged.groupby(list(keys), sort=True):
        if len(group) != 2:
            continue
        early, late = group.sort_values(window).to_dict("records")
        change = {kind: 100.0 * (late[f"bp_{kind}"] - early[f"bp_{kind}"]) / early[f"bp_{kind}"]
                  for kind in ("test", "ref")}
        rows.append({**dict(zip(keys, key, strict=True)), "change_test": change["test"],
                     "change_ref": change["ref"], "error": change["test"] - change["ref"]})
    return BpComparison(merged, pd.DataFrame(rows))
