"""The result type shared by every kinetic model, and input checks they all use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ModelFit", "PreparedInputs", "fit_quality", "join_flags", "prepare_inputs"]


@dataclass(frozen=True)
class ModelFit:
    """Result of fitting one reference-tissue model to one or many target TACs.

    Every model fills every field (NaN where it does not estimate a quantity), so
    tables from different models concatenate with no special cases.

    Attributes
    ----------
    model : str
        ``srtm``, ``srtm_bf``, ``srtm2``, ``mrtm``, ``mrtm2``, ``logan_ref`` or ``ratio``.
    bp_nd : ndarray of shape (n_tacs,)
        Non-displaceable binding potential, unitless.
    r1 : ndarray of shape (n_tacs,)
        K1/K1' (unitless); NaN where the model does not estimate it.
    k2 : ndarray of shape (n_tacs,)
        Target efflux rate constant, 1/min; NaN where not estimated.
    k2prime : ndarray of shape (n_tacs,)
        Reference efflux rate constant used or estimated, 1/min; NaN where not used.
    se : dict of str to ndarray
        Absolute standard errors, keyed like the estimates (``bp_nd``, ``r1``, ...).
    fitted : ndarray of shape (n_frames, n_tacs)
        Model prediction, Bq/mL, frame-averaged, NaN for frames outside the fit.
    used : ndarray of shape (n_frames,)
        Frames inside the fit window (and after t*), bool.
    flags : ndarray of shape (n_tacs,)
        ``""`` for a clean fit, else ``;``-joined flags such as ``at_bound``,
        ``not_converged``, ``nan_input``.
    options : dict
        Everything needed to redo the fit (window, t*, weights, k2', grid...).
    extra : dict of str to ndarray
        Model-specific per-TAC quantities (e.g. ``dvr``, ``intercept``, ``theta3``).
    """

    model: str
    bp_nd: np.ndarray
    r1: np.ndarray
    k2: np.ndarray
    k2prime: np.ndarray
    se: dict[str, np.ndarray]
    fitted: np.ndarray
    used: np.ndarray
    flags: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_tacs(self) -> int:
        """Number of target TACs fitted."""
        return int(np.asarray(self.bp_nd).size)

    def to_frame(self, names: Sequence[str]) -> pd.DataFrame:
        """One row per target TAC with DESIGN.md's columns (``region``, ``model``, ``bp_nd``...).

        Fit-quality columns: ``n_frames`` (frames fitted), ``rmse`` and ``nrmse``
        (residual root mean square, Bq/mL and relative to the mean target activity
        over fitted frames) and ``flags``.
        """
        names = list(names)
        if len(names) != self.n_tacs:
            raise ValueError(f"{len(names)} names for {self.n_tacs} fitted TACs")
        n = self.n_tacs
        nan = np.full(n, np.nan)
        table = pd.DataFrame({
            "region": names,
            "model": self.model,
            "bp_nd": np.asarray(self.bp_nd, float),
            "r1": np.asarray(self.r1, float),
            "k2": np.asarray(self.k2, float),
            "k2prime": np.asarray(self.k2prime, float),
            "se_bp_nd": np.asarray(self.se.get("bp_nd", nan), float),
            "se_r1": np.asarray(self.se.get("r1", nan), float),
            "se_k2": np.asarray(self.se.get("k2", nan), float),
        })
        for key, value in self.extra.items():
            value = np.asarray(value)
            if value.shape == (n,):
                table[key] = value
        table["n_frames"] = int(np.count_nonzero(self.used))
        table["flags"] = np.asarray(self.flags, dtype=object)
        return table


@dataclass(frozen=True)
class PreparedInputs:
    """Validated model inputs (see :func:`prepare_inputs`).

    Attributes
    ----------
    frames : Frames
        All frames, minutes (models integrate the reference from time 0 over every frame,
        also those outside the window).
    ref_tac : ndarray of shape (n_frames,)
    tacs : ndarray of shape (n_frames, n_tacs)
    used : ndarray of shape (n_frames,) bool
        Frames inside ``window`` and with mid-time >= ``t_star``.
    weights : ndarray of shape (n_frames,)
        Relative frame weights, normalized to mean 1 over used frames; 0 outside.
    bad_tacs : ndarray of shape (n_tacs,) bool
        Target TACs with NaN/Inf in used frames (the model must flag them ``nan_input``
        and return NaN for them, never raise for one bad voxel).
    was_1d : bool
        Whether ``tacs`` was given as one curve.
    """

    frames: Any
    ref_tac: np.ndarray
    tacs: np.ndarray
    used: np.ndarray
    weights: np.ndarray
    bad_tacs: np.ndarray
    was_1d: bool


def prepare_inputs(
    frames: Any,
    ref_tac: np.ndarray,
    tacs: np.ndarray,
    *,
    window: tuple[float | None, float | None] | None = None,
    t_star: float | None = None,
    weights: np.ndarray | None = None,
    min_frames: int = 3,
    model: str = "",
) -> PreparedInputs:
    """Check and tidy the inputs every model takes; raise :class:`InputError` on bad input.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected. Must be finite; it must not be all zero.
    tacs : ndarray of shape (n_frames,) or (n_frames, n_tacs)
        Target TACs, Bq/mL.
    window : (start, end) in minutes, default=None
        Fit only frames whose mid-time lies in the window; None = whole scan.
    t_star : float, default=None
        Minutes; frames with mid-time before t* are not fitted (linear methods).
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights; None = uniform.
    min_frames : int, default=3
        Fewest frames the model needs (its parameter count plus one, at least).
    model : str
        Model name for messages.
    """
    from pipeline.errors import InputError, format_problem

    name = model or "model"
    ref = np.asarray(ref_tac, dtype=float).reshape(-1)
    arr = np.asarray(tacs, dtype=float)
    was_1d = arr.ndim == 1
    if was_1d:
        arr = arr[:, None]
    n = frames.n_frames
    if ref.size != n:
        raise InputError(format_problem(
            None, f"{name}: reference TAC has {ref.size} values but there are {n} frames",
            "Give one reference value per frame."))
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InputError(format_problem(
            None, f"{name}: target TACs have shape {arr.shape}, expected ({n}, n_tacs)",
            "Give one row per frame and one column per region or voxel."))
    used = frames.in_window(*(window or (None, None)))
    if window is not None and window[0] is not None and window[1] is not None \
            and window[1] <= window[0]:
        raise InputError(format_problem(
            None, f"{name}: window end {window[1]} min is not after its start {window[0]} min",
            "Give the window as START END in minutes, START < END."))
    if t_star is not None:
        if t_star >= frames.mid[-1]:
            raise InputError(format_problem(
                None, f"{name}: t* = {t_star:g} min is at or past the last frame "
                f"(mid-time {frames.mid[-1]:g} min)",
                "Choose t* (minutes) well before the end of the scan."))
        used &= frames.mid >= t_star
    if int(used.sum()) < min_frames:
        raise InputError(format_problem(
            None, f"{name}: only {int(used.sum())} frame(s) to fit (window {window}, "
            f"t* {t_star}) but the model needs at least {min_frames}",
            "Widen the window or lower t*."))
    if not np.all(np.isfinite(ref)):
        raise InputError(format_problem(
            None, f"{name}: the reference TAC contains NaN or infinite values",
            "Check the reference region: it may be empty or outside the field of view."))
    if np.all(ref[used] == 0):
        raise InputError(format_problem(
            None, f"{name}: the reference TAC is zero in every fitted frame",
            "Check the reference region mask and the image."))
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.size != n or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError(format_problem(
                None, f"{name}: weights must be {n} finite non-negative values",
                "Use a weighting scheme (uniform, duration, counts) or valid values."))
    w = np.where(used, w, 0.0)
    if w.sum() <= 0:
        raise InputError(format_problem(None, f"{name}: all fitted frames have zero weight",
                                        "Use another weighting scheme."))
    w = w / w[used].mean()
    bad = ~np.all(np.isfinite(arr[used]), axis=0)
    return PreparedInputs(frames, ref, arr, used, w, bad, was_1d)


def fit_quality(prepared: PreparedInputs, fitted: np.ndarray) -> dict[str, np.ndarray]:
    """Residual root mean square over the fitted frames, absolute and relative.

    Parameters
    ----------
    prepared : PreparedInputs
    fitted : ndarray of shape (n_frames, n_tacs)
        Model prediction, Bq/mL.

    Returns
    -------
    dict
        ``rmse`` (Bq/mL, unweighted) and ``nrmse`` (rmse / mean absolute target activity
        over the fitted frames), each of shape (n_tacs,); NaN for TACs with bad input.
    """
    used = prepared.used
    data = prepared.tacs[used]
    resid = data - np.asarray(fitted)[used]
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.sqrt(np.mean(resid * resid, axis=0))
        level = np.mean(np.abs(data), axis=0)
        nrmse = np.where(level > 0, rmse / level, np.nan)
    rmse = np.where(prepared.bad_tacs, np.nan, rmse)
    nrmse = np.where(prepared.bad_tacs, np.nan, nrmse)
    return {"rmse": rmse, "nrmse": nrmse}


def join_flags(*conditions: tuple[str, np.ndarray], n: int) -> np.ndarray:
    """Per-TAC flag strings: the names of the true conditions joined by ``;`` (``""`` if none).

    Parameters
    ----------
    *conditions : (name, bool array of shape (n,))
    n : int
        Number of TACs.
    """
    flags = np.full(n, "", dtype=object)
    for name, mask in conditions:
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        has = flags[mask] != ""
        flags[mask] = np.where(has, flags[mask] + ";" + name, name)
    return flags
