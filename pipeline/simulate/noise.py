"""Noise that follows counts, for decay-corrected frame averages.

Model. A frame of duration ``dt`` (minutes) with decay-corrected mean activity ``C`` and
decay-correction factor ``DCF`` recorded ``C / DCF * dt`` worth of counts (up to a scanner
sensitivity constant). Counts are Poisson, so the decay-uncorrected frame mean has variance
proportional to ``(C / DCF) / dt``; decay correction multiplies it by ``DCF`` squared, hence

    var(C_measured) = k * C * DCF / dt

in decay-corrected units. The constant ``k`` is set through a calibration point: a voxel (or
region) of ``reference_activity`` Bq/mL in the 80-90 min frame has a coefficient of
variation ``reference_cv`` (defaults 10 kBq/mL and 10 %, typical of a 10-min frame of an
HRRT-class reconstruction), multiplied by the user's ``level`` (``--noise``). Region means
of ``volume`` mL average ``volume / resel`` independent noise elements, where the
resolution element is ``(4 pi)^(3/2) sigma^3`` for noise smoothed by a Gaussian of standard
deviation ``sigma`` (reconstruction correlation, FWHM ``noise_fwhm``), or the voxel volume if
larger.

Noise is Gaussian with that variance (counts per voxel are large); values may go negative,
as in real reconstructions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.frames import Frames, decay_correction_factors

__all__ = ["NoiseModel", "frame_sd", "frame_variance_scale", "resel_volume_ml"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class NoiseModel:
    """Settings of count-following noise.

    Attributes
    ----------
    level : float, default=1.0
        Multiplies the noise standard deviation (0 = noiseless).
    reference_cv : float, default=0.10
        Voxel coefficient of variation at ``reference_activity`` in the 80-90 min frame.
    reference_activity : float, default=10000.0
        Bq/mL, decay-corrected.
    half_life : float, default=20.364
        Minutes (C-11).
    noise_fwhm : float, default=5.0
        FWHM (mm) of the spatial correlation of image noise (0 = white noise).
    """

    level: float = 1.0
    reference_cv: float = 0.10
    reference_activity: float = 10000.0
    half_life: float = 20.364
    noise_fwhm: float = 5.0

    def to_dict(self) -> dict:
        """The settings, for the truth sidecar."""
        return {"level": self.level, "reference_cv": self.reference_cv,
                "reference_activity_bq_per_ml": self.reference_activity,
                "reference_frame_min": [80.0, 90.0], "half_life_min": self.half_life,
                "noise_fwhm_mm": self.noise_fwhm,
                "variance": "k * C * DCF / duration (decay-corrected C, minutes)"}


def frame_variance_scale(frames: Frames, model: NoiseModel) -> np.ndarray:
    """Per-frame ``k * DCF / dt`` (so that variance = this times activity), voxel level.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    model : NoiseModel
        The noise model (level, half-life, smoothing).

    Returns
    -------
    ndarray of shape (n_frames,)
        (Bq/mL) units: variance in (Bq/mL)^2 per Bq/mL of decay-corrected activity.
    """
    ref = Frames(np.array([80.0]), np.array([90.0]))
    ref_dcf = decay_correction_factors(ref, model.half_life)[0]
    ref_sd = model.level * model.reference_cv * model.reference_activity
    k = ref_sd ** 2 * 10.0 / (model.reference_activity * ref_dcf)
    return k * decay_correction_factors(frames, model.half_life) / frames.duration


def resel_volume_ml(model: NoiseModel, voxel_ml: float) -> float:
    """Volume (mL) of one independent noise element: smoothed-noise resel or one voxel.

    Parameters
    ----------
    model : NoiseModel
        The noise model (its smoothing FWHM, mm).
    voxel_ml : float
        Voxel volume, mL.
    """
    sigma_mm = model.noise_fwhm * _FWHM_TO_SIGMA
    resel = (4.0 * math.pi) ** 1.5 * sigma_mm ** 3 / 1000.0
    return max(resel, voxel_ml)


def frame_sd(activity: np.ndarray, frames: Frames, model: NoiseModel, *,
             volume_ml: float | np.ndarray | None = None, voxel_ml: float = 0.027
             ) -> np.ndarray:
    """Standard deviation of each frame value under the count model.

    Parameters
    ----------
    activity : ndarray of shape (n_frames, ...)
        Noiseless decay-corrected frame means, Bq/mL (negative values count as 0).
    frames : Frames
    model : NoiseModel
    volume_ml : float or ndarray broadcasting against ``activity[0]``, default=None
        Region volume(s), mL; None means one voxel.
    voxel_ml : float, default=0.027
        Voxel volume, mL (3 mm voxels).

    Returns
    -------
    ndarray, same shape as ``activity``
        Bq/mL.
    """
    activity = np.asarray(activity, float)
    scale = frame_variance_scale(frames, model).reshape((-1,) + (1,) * (activity.ndim - 1))
    variance = scale * np.clip(activity, 0.0, None)
    if volume_ml is not None:
        elements = np.maximum(np.asarray(volume_ml, float) / resel_volume_ml(model, voxel_ml),
                              1.0)
        variance = variance / elements
    return np.sqrt(variance)
