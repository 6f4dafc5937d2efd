"""Frame weights for kinetic fits: uniform, frame duration, or counts.

Weights are relative: only their ratios matter, and models rescale them to mean 1 over
the fitted frames. ``counts`` follows the usual noise model of reconstructed PET, in which
the variance of a decay-corrected frame average is proportional to
``C_dc x DCF / duration`` (``C_dc`` the decay-corrected activity of a low-noise curve such
as the reference or whole-brain TAC, ``DCF`` the frame's decay-correction factor). The
weight is the inverse of that variance, ``duration / (C_dc x DCF)``, which equals
``duration x uncorrected activity / DCF**2`` up to a constant.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.frames import Frames, decay_correction_factors

__all__ = ["WEIGHT_SCHEMES", "frame_weights"]

WEIGHT_SCHEMES = ("uniform", "duration", "counts")


def frame_weights(scheme: str, frames: Frames, curve: np.ndarray | None = None, *,
                  half_life: float | None = None) -> np.ndarray:
    """Relative frame weights, mean 1.

    Parameters
    ----------
    scheme : {"uniform", "duration", "counts"}
        ``uniform``: all 1. ``duration``: frame duration (minutes). ``counts``: inverse of
        the variance model ``var = C_dc * DCF / duration`` with ``C_dc`` the decay-corrected
        activity of ``curve`` and ``DCF`` the frame's decay-correction factor, i.e.
        ``duration / (C_dc * DCF)`` = ``duration x uncorrected activity / DCF**2`` (up to a
        constant).
    frames : Frames
        Frame timing, minutes.
    curve : ndarray of shape (n_frames,), default=None
        Decay-corrected low-noise TAC (reference or whole brain), Bq/mL; needed by ``counts``.
    half_life : float, default=None
        Radionuclide half-life, minutes; needed by ``counts``.

    Returns
    -------
    ndarray of shape (n_frames,)
    """
    if scheme == "uniform":
        w = np.ones(frames.n_frames)
    elif scheme == "duration":
        w = frames.duration.copy()
    elif scheme == "counts":
        if curve is None or half_life is None:
            raise InputError(format_problem(
                None, "counts weights need a reference TAC and the radionuclide half-life",
                "Give both, or use duration weights."))
        activity = np.asarray(curve, float)
        dcf = decay_correction_factors(frames, half_life)
        floor = 0.01 * np.nanmax(np.abs(activity))  # keep early near-zero frames finite
        variance = np.maximum(activity, floor) * dcf / frames.duration
        w = 1.0 / variance
    else:
        raise ConfigError(format_problem(
            None, f"unknown weighting scheme {scheme!r}",
            f"Choose one of: {', '.join(WEIGHT_SCHEMES)}."))
    return w / w.mean()
