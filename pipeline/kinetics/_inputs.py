"""Input checks every kinetic model runs first (private).

:func:`prepare_inputs` checks shapes, the window, t* and weights, refuses a reference TAC
that cannot be used (:class:`~pipeline.errors.InputError`), and marks degenerate target
TACs (NaN, all zero, constant) so that the model can fit the others and
:func:`pipeline.kinetics.result.make_fit` flags them: one bad voxel never stops a map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = ["MAX_FIRST_FRAME_START", "PreparedInputs", "prepare_inputs", "row_selector"]

#: Latest first-frame start (minutes after injection) for models that integrate the TACs
#: from injection: before the first frame the curve is only assumed to rise from 0.
MAX_FIRST_FRAME_START = 2.0


@dataclass(frozen=True)
class PreparedInputs:
    """Validated model inputs (see :func:`prepare_inputs`).

    Attributes
    ----------
    frames : Frames
        All frames, minutes (models integrate the reference from time 0 over every frame,
        also those outside the window).
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL.
    tacs : ndarray of shape (n_frames, n_tacs)
        Target TACs as given, Bq/mL.
    used : ndarray of shape (n_frames,) bool
        Frames inside ``window`` and with mid-time >= ``t_star``.
    weights : ndarray of shape (n_frames,)
        Relative frame weights, normalized to mean 1 over used frames; 0 outside.
    nan_tacs, zero_tacs, constant_tacs : ndarray of shape (n_tacs,) bool
        Target TACs with NaN/Inf in the frames the model reads; zero in every fitted
        frame; the same nonzero value in every frame (no kinetics).
    was_1d : bool
        Whether ``tacs`` was given as one curve.
    """

    frames: Any
    ref_tac: np.ndarray
    tacs: np.ndarray
    used: np.ndarray
    weights: np.ndarray
    nan_tacs: np.ndarray
    zero_tacs: np.ndarray
    constant_tacs: np.ndarray
    was_1d: bool

    @property
    def degenerate(self) -> np.ndarray:
        """Target TACs that hold no information (their estimates are NaN)."""
        return self.nan_tacs | self.zero_tacs | self.constant_tacs

    def clean_tacs(self) -> np.ndarray:
        """Target TACs with degenerate ones set to 0, so batched algebra stays finite."""
        void = self.degenerate
        return np.where(void[None, :], 0.0, self.tacs) if void.any() else self.tacs


def check_starts_at_injection(frames: Any, model: str) -> None:
    """Refuse scans whose first frame starts too late for integrals from injection.

    Raises
    ------
    InputError
        If the first frame starts more than :data:`MAX_FIRST_FRAME_START` minutes after
        injection (e.g. a late second acquisition that cannot be fitted on its own).
    """
    if frames.start[0] > MAX_FIRST_FRAME_START:
        raise InputError(format_problem(
            frames.source or None,
            f"{model}: the first frame starts {frames.start[0]:g} min after injection; "
            f"{model} integrates the TACs from injection and needs the scan to start within "
            f"{MAX_FIRST_FRAME_START:g} min", "Fit a scan that starts at injection: this "
            "looks like a late or second acquisition, so fit it together with the earlier "
            "one(s) of the same injection (merged frames), or use the ratio method."))


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
    all_frames: bool = False,
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
    all_frames : bool, default=False
        The model reads every frame (integrals from injection), so NaN in any frame, not
        only in fitted ones, makes a TAC unusable.
    """
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
    # max and min per TAC (NaN propagates, Inf stays): no temporary (frames x TACs) array
    top, bottom = arr.max(axis=0), arr.min(axis=0)
    if used.all():
        fit_top, fit_bottom = top, bottom
    else:
        rows = row_selector(used)
        fit_top, fit_bottom = arr[rows].max(axis=0), arr[rows].min(axis=0)
    read_top, read_bottom = (top, bottom) if all_frames else (fit_top, fit_bottom)
    nan = ~(np.isfinite(read_top) & np.isfinite(read_bottom))
    zero = ~nan & (fit_top == 0.0) & (fit_bottom == 0.0)
    constant = ~nan & ~zero & (top == bottom)
    return PreparedInputs(frames, ref, arr, used, w, nan, zero, constant, was_1d)


def row_selector(used: np.ndarray) -> slice | np.ndarray:
    """A slice for a contiguous run of True in ``used`` (indexing then makes no copy)."""
    idx = np.flatnonzero(used)
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
