"""Motion confounds of a scan as a BIDS-style table, and the frame/scan exclusion decision.

The table (``<scan>_desc-confounds_timeseries.tsv``, one row per frame, as fMRIPrep's
confounds) has ``trans_x, trans_y, trans_z`` (mm), ``rot_x, rot_y, rot_z`` (radians, about
the reference's centre of mass), ``framewise_displacement`` (mm, Power et al. 2012, 50 mm
sphere), ``displacement`` (mm: translation of the centre plus 50 mm times the rotation
angle, relative to the reference) and ``motion_outlier`` (1 = excluded frame). Its JSON
sidecar describes every column, the thresholds, the decision and the transforms
(``frame_from_reference``, RAS mm), so later steps need nothing else from motion correction.

Exclusion: a frame whose FD exceeds ``fd_mm`` moved during or right before it by more
than correction can undo (motion within a frame blurs it); a scan is excluded when any
frame is displaced more than ``max_displacement_mm`` from the reference (attenuation
correction no longer matches the head) or when more than ``max_outlier_fraction`` of its
frames are outliers. Every reason is logged and written to the sidecar.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, format_problem
from pipeline.frames import Frames
from pipeline.preprocess.rigid import framewise_displacement, rotation_angle
from pipeline.tables import provenance, read_json, sidecar_path, write_table

if TYPE_CHECKING:  # an annotation only: motion.py imports scipy.ndimage (0.3 s at parse)
    from pipeline.preprocess.motion import MotionEstimate

__all__ = [
    "MotionDecision",
    "MotionThresholds",
    "frames_kept",
    "motion_confounds",
    "motion_decision",
    "read_motion",
    "scan_exclusion",
    "thresholds_from_config",
    "write_motion_confounds",
]

log = logging.getLogger(__name__)

_HEAD_RADIUS_MM = 50.0
_COLUMNS = {
    "trans_x": ("mm", "translation along x (left-right) of the reference's centre of mass"),
    "trans_y": ("mm", "translation along y (posterior-anterior)"),
    "trans_z": ("mm", "translation along z (inferior-superior)"),
    "rot_x": ("rad", "rotation about x (pitch), R = Rz Ry Rx about the centre of mass"),
    "rot_y": ("rad", "rotation about y (roll)"),
    "rot_z": ("rad", "rotation about z (yaw)"),
    "framewise_displacement": ("mm", "Power et al. (2012) FD: sum of absolute parameter "
                               "changes from the previous frame, rotations as arc length "
                               "on a 50 mm sphere; 0 for the first frame"),
    "displacement": ("mm", "displacement from the reference: |translation| + 50 mm x "
                     "rotation angle"),
    "motion_outlier": ("", "1 if the frame is excluded (framewise_displacement above the "
                       "threshold), else 0"),
}


@dataclass(frozen=True)
class MotionThresholds:
    """When frames and scans are excluded for motion.

    Attributes
    ----------
    fd_mm : float, default=2.0
        A frame with framewise displacement above this (mm) is an outlier.
    max_displacement_mm : float or None, default=10.0
        A scan with any frame displaced more than this (mm) from the reference is excluded;
        None applies no such limit (frame thresholds only, see :meth:`frames_only`).
    max_outlier_fraction : float or None, default=0.25
        A scan with a larger fraction of outlier frames is excluded; None: no such limit.
    """

    fd_mm: float = 2.0
    max_displacement_mm: float | None = 10.0
    max_outlier_fraction: float | None = 0.25

    def __post_init__(self) -> None:
        for name in ("fd_mm", "max_displacement_mm"):
            value = getattr(self, name)
            if value is None and name != "fd_mm":
                continue
            if value is None or not np.isfinite(value) or value <= 0:
                raise ConfigError(format_problem(
                    f"config, motion.{name}", f"must be a positive number of mm; got "
                    f"{value!r}", "Give a threshold in mm, e.g. 2 for fd_mm."))
        fraction = self.max_outlier_fraction
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ConfigError(format_problem(
                "config, motion.max_outlier_fraction", f"must be within 0-1; got "
                f"{fraction!r}", "Give a fraction, e.g. 0.25."))

    @classmethod
    def frames_only(cls, fd_mm: float) -> MotionThresholds:
        """Thresholds that leave out outlier frames but never exclude the scan.

        The workflow decides which scans are excluded before their TACs are made (the scan
        limits reach only that decision), so a TAC or MNI-frames step depends on ``fd_mm``
        alone and editing a scan limit redoes none of them.

        Parameters
        ----------
        fd_mm : float
            Framewise displacement threshold, mm.
        """
        return cls(fd_mm=fd_mm, max_displacement_mm=None, max_outlier_fraction=None)

    @property
    def limits_scans(self) -> bool:
        """True when these thresholds can exclude a whole scan."""
        return self.max_displacement_mm is not None or self.max_outlier_fraction is not None


@dataclass
class MotionDecision:
    """Which frames (and whether the scan) are excluded, and why.

    Attributes
    ----------
    outliers : ndarray of bool, shape (n_frames,)
    scan_excluded : bool
    reasons : list of str
        One sentence per exclusion.
    """

    outliers: np.ndarray
    scan_excluded: bool
    reasons: list[str] = field(default_factory=list)


def motion_confounds(estimate: MotionEstimate) -> pd.DataFrame:
    """The confounds table of a motion estimate (columns in the module docstring, without
    ``motion_outlier``)."""
    params = estimate.params
    table = pd.DataFrame(params, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                          "rot_z"])
    table["framewise_displacement"] = framewise_displacement(params, _HEAD_RADIUS_MM)
    table["displacement"] = (np.linalg.norm(params[:, :3], axis=1)
                             + _HEAD_RADIUS_MM * rotation_angle(estimate.frame_from_reference))
    return table


def motion_decision(table: pd.DataFrame, thresholds: MotionThresholds,
                    scan: str = "scan", *, log_reasons: bool = True) -> MotionDecision:
    """Apply the thresholds to a confounds table; return (and log) every reason.

    Parameters
    ----------
    table : DataFrame
        A confounds table (``framewise_displacement`` and ``displacement`` in mm).
    thresholds : MotionThresholds
    scan : str, default="scan"
        The scan's name, at the start of each reason.
    log_reasons : bool, default=True
        Log each reason as a warning (False: only return them).
    """
    fd = table["framewise_displacement"].to_numpy(float)
    outliers = fd > thresholds.fd_mm
    reasons = [f"{scan}: frame {k} excluded: framewise displacement {fd[k]:.2f} mm > "
               f"{thresholds.fd_mm:g} mm" for k in np.flatnonzero(outliers)]
    worst = float(table["displacement"].max())
    excluded = False
    limit = thresholds.max_displacement_mm
    if limit is not None and worst > limit:
        excluded = True
        reasons.append(f"{scan}: scan excluded: a frame is displaced {worst:.1f} mm from the "
                       f"reference (> {limit:g} mm)")
    fraction = float(outliers.mean()) if len(outliers) else 0.0
    allowed = thresholds.max_outlier_fraction
    if allowed is not None and fraction > allowed:
        excluded = True
        reasons.append(f"{scan}: scan excluded: {100 * fraction:.0f}% of frames are motion "
                       f"outliers (> {100 * allowed:.0f}%)")
    if log_reasons:
        for reason in reasons:
            log.warning(reason)
    return MotionDecision(outliers=outliers, scan_excluded=excluded, reasons=reasons)


def scan_exclusion(confounds_tsv: str | PathLike, thresholds: MotionThresholds, *,
                   scan: str | None = None) -> list[str]:
    """Why a scan is excluded for head motion under ``thresholds`` (empty: it is kept).

    The one decision the workflow (which scans reach the analyses), the report and
    :func:`frames_kept` share. Nothing is logged: the caller says what it does with it.

    Parameters
    ----------
    confounds_tsv : path-like
        The scan's ``_desc-confounds_timeseries.tsv``.
    thresholds : MotionThresholds
    scan : str, default=None
        The scan's name in the reasons (default: from the file name).

    Returns
    -------
    list of str
        One phrase per scan-level reason (e.g. ``a frame is displaced 12.3 mm from the
        reference (> 10 mm)``).
    """
    from pipeline.tables import read_table

    name = scan or Path(confounds_tsv).name.removesuffix("_desc-confounds_timeseries.tsv")
    decision = motion_decision(read_table(confounds_tsv), thresholds, scan=name,
                               log_reasons=False)
    if not decision.scan_excluded:
        return []
    return [r.split(": scan excluded: ", 1)[-1] for r in decision.reasons
            if ": scan excluded: " in r]


def write_motion_confounds(estimate: MotionEstimate, frames: Frames,
                           out_tsv: str | PathLike,
                           thresholds: MotionThresholds | None = MotionThresholds(), *,
                           source: str | PathLike | None = None,
                           settings: dict | None = None) -> MotionDecision | None:
    """Write ``<scan>_desc-confounds_timeseries.tsv`` and its JSON sidecar (atomically).

    Parameters
    ----------
    estimate : MotionEstimate
    frames : Frames
        Minutes (written to the sidecar in seconds).
    out_tsv : path-like
    thresholds : MotionThresholds or None
        None writes no ``motion_outlier`` column and no decision: the workflow applies the
        configured thresholds where frames are used (:func:`frames_kept`), so editing a
        threshold does not redo the registrations.
    source : path-like, default=None
        The PET image.
    settings : dict, default=None
        Motion-correction settings, recorded in the sidecar.

    Returns
    -------
    MotionDecision or None
    """
    table = motion_confounds(estimate)
    decision = None
    if thresholds is not None:
        decision = motion_decision(table, thresholds,
                                   scan=Path(source).name if source else "scan")
        table["motion_outlier"] = decision.outliers.astype(int)
    columns = {k: v for k, v in _COLUMNS.items() if k in table.columns}
    sidecar = provenance(
        Description="Head-motion confounds of a dynamic PET scan, one row per frame.",
        Sources=[str(source)] if source else [],
        Columns={k: {"Units": u, "Description": d} for k, (u, d) in columns.items()},
        FrameTimesStart=[float(v) for v in frames.start_seconds],
        FrameDuration=[float(v) for v in frames.end_seconds - frames.start_seconds],
        CentreMM=[float(v) for v in estimate.centre],
        ReferenceFrames=estimate.reference_frames,
        Blocks=estimate.blocks,
        FrameFromReference=np.round(estimate.frame_from_reference, 8).tolist(),
        FrameFromReferenceDescription="per frame, 4x4 RAS mm: a point of the motion "
        "reference (the grid of the PET image) -> the same anatomy in that frame",
        **({} if decision is None else {
            "Thresholds": dataclasses.asdict(thresholds),
            "ScanExcluded": decision.scan_excluded, "Reasons": decision.reasons}),
        Notes=estimate.notes, Settings=settings or {})
    write_table(out_tsv, table, sidecar)
    return decision


def thresholds_from_config(values: dict) -> MotionThresholds:
    """The thresholds of the ``motion`` config keys.

    Parameters
    ----------
    values : dict
        ``{"motion.fd_mm": mm, "motion.max_displacement_mm": mm,
        "motion.max_outlier_fraction": fraction}`` (a step's ``used`` params).

    Returns
    -------
    MotionThresholds
    """
    return MotionThresholds(fd_mm=float(values["motion.fd_mm"]),
                            max_displacement_mm=float(values["motion.max_displacement_mm"]),
                            max_outlier_fraction=float(values["motion.max_outlier_fraction"]))


def frames_kept(confounds_tsv: str | PathLike, thresholds: MotionThresholds, *,
                scan: str | None = None) -> tuple[np.ndarray, MotionDecision]:
    """Which frames of a scan are analysed under ``thresholds``, or an error if none are.

    Frames whose framewise displacement exceeds ``thresholds.fd_mm`` moved during or just
    before the frame, which correction cannot undo; they are left out of the region TACs
    and of the images on the MNI grid, so every fit gives them zero weight and the models'
    integrals interpolate across them (:mod:`pipeline.kinetics`, frame gaps).

    Parameters
    ----------
    confounds_tsv : path-like
        The scan's ``_desc-confounds_timeseries.tsv``.
    thresholds : MotionThresholds
    scan : str, default=None
        The scan's name, in the logged reasons.

    Returns
    -------
    keep : ndarray of bool, shape (n_frames,)
    decision : MotionDecision
        Outliers and reasons (logged).

    Raises
    ------
    InputError
        When the thresholds exclude the scan (the reasons, and what to do), or leave no
        frame.
    """
    from pipeline.errors import InputError

    table, _, _ = read_motion(confounds_tsv)
    name = scan or Path(confounds_tsv).name.removesuffix("_desc-confounds_timeseries.tsv")
    decision = motion_decision(table, thresholds, scan=name)
    if decision.scan_excluded:
        raise InputError(format_problem(
            confounds_tsv, "the scan is excluded for head motion: " + "; ".join(
                r.split(": ", 1)[-1] for r in decision.reasons if "scan excluded" in r),
            "Check the scan's motion QC figure (_desc-motion_qc.png). Leave it out with "
            "selection.exclude_subjects or selection.exclude_tasks, or, if the correction "
            "looks right, raise motion.max_displacement_mm or motion.max_outlier_fraction."))
    if decision.outliers.all():
        raise InputError(format_problem(
            confounds_tsv, f"every frame moved more than motion.fd_mm = {thresholds.fd_mm:g} "
            "mm: no frame is left to analyse",
            "Check the scan's motion QC figure (_desc-motion_qc.png); exclude the scan or "
            "raise motion.fd_mm."))
    return ~decision.outliers, decision


def read_motion(confounds_tsv: str | PathLike) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Read a confounds table: the table, ``frame_from_reference`` (n, 4, 4) and sidecar."""
    from pipeline.tables import read_table

    table = read_table(confounds_tsv)
    meta = read_json(sidecar_path(confounds_tsv))
    return table, np.asarray(meta["FrameFromReference"], float), meta
