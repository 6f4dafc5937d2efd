"""Dynamic PET images of a simulated scan: phantom x TACs, PSF blur, voxel variability, noise.

For a subject, each tissue class ``c`` has a fraction map ``f_c`` (the phantom) and a small
smooth voxel-level BP_ND variability field ``e_c`` (standard deviation ``voxel_cv`` of
ln BP_ND, spatial FWHM ``voxel_fwhm``, with zero mean over the class so regional truth is
unchanged). The noiseless activity of a voxel is, to first order in ``e``,

    A(x, t) = sum_c f_c(x) TAC_c(t) + f_c(x) e_c(x) dTAC_c/dlnBP(t),

blurred by the scanner PSF (Gaussian, FWHM ``psf_fwhm``). Blurring is linear, so each
subject's ``2 n_classes`` maps are blurred once and every frame is a matrix product.

Noise (see :mod:`pipeline.simulate.noise`): per frame, variance ``k A DCF / dt`` on the
blurred noiseless activity (decay-corrected), Gaussian, spatially correlated by smoothing
white noise with a Gaussian of FWHM ``noise_fwhm`` and rescaling to unit variance (real
reconstructions have correlated noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.frames import Frames
from pipeline.simulate.noise import NoiseModel, frame_variance_scale
from pipeline.simulate.phantom import Phantom, blur

__all__ = ["ImageSettings", "SubjectMaps", "noise_norm", "scan_image", "subject_maps"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class ImageSettings:
    """Image-level settings.

    Attributes
    ----------
    psf_fwhm : float, default=6.0
        Scanner point-spread function, mm.
    voxel_cv : float, default=0.05
        Voxel-level SD of ln BP_ND within a tissue class.
    voxel_fwhm : float, default=6.0
        Spatial smoothness of that variability, mm.
    """

    psf_fwhm: float = 6.0
    voxel_cv: float = 0.05
    voxel_fwhm: float = 6.0


@dataclass(frozen=True)
class SubjectMaps:
    """Blurred class maps of one subject, on the voxels where activity can be non-zero.

    Attributes
    ----------
    support : ndarray of bool, shape (nx, ny, nz)
    maps : ndarray of shape (2 * n_classes, n_support), float32
        Blurred ``f_c`` then blurred ``f_c e_c``.
    box : tuple of slice
        Bounding box of the support with a margin for noise smoothing.
    """

    support: np.ndarray
    maps: np.ndarray
    box: tuple[slice, slice, slice]


def subject_maps(phantom: Phantom, rng: np.random.Generator,
                 settings: ImageSettings = ImageSettings()) -> SubjectMaps:
    """Draw one subject's voxel variability and blur the class maps by the PSF.

    Parameters
    ----------
    phantom : Phantom
        Tissue-class fractions on the MNI grid.
    rng : Generator
        The subject's generator.
    settings : ImageSettings, default=ImageSettings()
        Voxel variability and PSF (mm).
    """
    shape = phantom.shape
    fractions = phantom.fractions
    field = rng.standard_normal(shape).astype(np.float32)
    if settings.voxel_cv > 0:
        field = blur(field, settings.voxel_fwhm, phantom.voxel_size)
        field *= settings.voxel_cv / max(float(field.std()), 1e-12)
    else:
        field[:] = 0.0
    varied = np.empty_like(fractions)
    for c in range(fractions.shape[0]):
        weight = fractions[c]
        total = float(weight.sum())
        mean = float((weight * field).sum()) / total if total > 0 else 0.0
        varied[c] = weight * (field - mean)           # zero class-weighted mean
    blurred = blur(np.concatenate([fractions, varied]), settings.psf_fwhm, phantom.voxel_size)
    support = blur(fractions.sum(axis=0), settings.psf_fwhm, phantom.voxel_size) > 1e-3
    margin = 4
    box = tuple(slice(max(0, int(idx.min()) - margin), min(n, int(idx.max()) + margin + 1))
                for idx, n in zip(np.nonzero(support), shape, strict=True))
    return SubjectMaps(support=support, maps=blurred[:, support].astype(np.float32), box=box)


def noise_norm(noise_fwhm: float, voxel_size: float) -> float:
    """Standard deviation of unit white noise after smoothing (for rescaling to 1).

    Parameters
    ----------
    noise_fwhm : float
        Smoothing of the noise, mm (0: white noise).
    voxel_size : float
        Voxel size, mm.
    """
    if noise_fwhm <= 0:
        return 1.0
    sigma = noise_fwhm * _FWHM_TO_SIGMA / voxel_size
    half = math.ceil(3.0 * sigma) + 2
    delta = np.zeros((2 * half + 1,) * 3, np.float64)
    delta[half, half, half] = 1.0
    return float(np.sqrt((blur(delta, noise_fwhm, voxel_size) ** 2).sum()))


def scan_image(maps: SubjectMaps, tacs: np.ndarray, derivative: np.ndarray, frames: Frames,
               noise: NoiseModel, rng: np.random.Generator, voxel_size: float
               ) -> np.ndarray:
    """The 4D image of one scan, Bq/mL decay-corrected, shape (nx, ny, nz, n_frames).

    Parameters
    ----------
    maps : SubjectMaps
    tacs, derivative : ndarray of shape (n_frames, n_classes)
        Class TACs of the scan and their derivative with respect to ln BP_ND.
    frames : Frames
    noise : NoiseModel
        ``level = 0`` gives the noiseless image.
    rng : numpy.random.Generator
        The scan's noise stream.
    voxel_size : float
        mm.
    """
    basis = np.concatenate([tacs, derivative], axis=1).astype(np.float32)   # (F, 2C)
    activity = basis @ maps.maps                                            # (F, n_support)
    inside = maps.support[maps.box]                 # support within the bounding box
    if noise.level > 0:
        scale = frame_variance_scale(frames, noise).astype(np.float32)
        sd = np.sqrt(scale[:, None] * np.clip(activity, 0.0, None))
        white = rng.standard_normal((frames.n_frames, *inside.shape), dtype=np.float32)
        if noise.noise_fwhm > 0:
            white = blur(white, noise.noise_fwhm, voxel_size)
            white /= np.float32(noise_norm(noise.noise_fwhm, voxel_size))
        activity += sd * white[:, inside]
    out = np.zeros((*maps.support.shape, frames.n_frames), np.float32)
    box = out[maps.box]
    box[inside] = activity.T
    return out
