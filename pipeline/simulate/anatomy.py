"""A synthetic T1-weighted MRI of a simulated subject, in its native space.

Intensities come from nilearn's MNI152 tissue templates (shipped with nilearn) pulled
through the subject's anatomy (:class:`pipeline.simulate.headpose.HeadGeometry`): white
matter bright, grey matter darker, CSF inside the brain dark, background zero, with a
smooth multiplicative bias field and Gaussian noise. The image is brain-only (as if skull-
stripped); the MNI template it is registered to is nilearn's T1 template, a different
image from these tissue maps, so the registration is not matching an image to itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from pipeline.simulate.headpose import HeadGeometry

__all__ = ["T1Settings", "native_t1_grid", "synthetic_t1"]

#: Relative T1w intensities of white matter, grey matter and CSF.
_INTENSITY = {"wm": 1.0, "gm": 0.62, "csf": 0.18}


@dataclass(frozen=True)
class T1Settings:
    """Synthetic T1w image settings.

    Attributes
    ----------
    voxel_mm : float, default=1.0
        Isotropic voxel size, mm.
    shape : tuple of int, default=(176, 208, 176)
        Matrix (x, y, z).
    noise_sd : float, default=0.02
        Gaussian noise SD relative to white matter.
    bias_amplitude : float, default=0.08
        Peak-ish relative amplitude of the smooth bias field.
    """

    voxel_mm: float = 1.0
    shape: tuple[int, int, int] = (176, 208, 176)
    noise_sd: float = 0.02
    bias_amplitude: float = 0.08


@functools.lru_cache(maxsize=1)
def _tissue_templates() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """nilearn's MNI152 GM, WM (probabilities 0-1) and brain (T1 > 0.2 max) maps at 1 mm,
    and their affine.

    The files store 0-255 integers; they are rescaled to 0-1 by their maximum, as nilearn's
    loaders and the phantom (:mod:`pipeline.simulate.phantom`) do, so that the T1w's
    tissue fractions are the phantom's (unscaled, GM and WM summed to at least 1 almost
    everywhere in the brain and the T1w had no CSF).
    """
    import nibabel as nib

    from pipeline.space import mni_template_file

    maps = []
    for name in ("gm", "wm", "t1"):
        img = nib.load(str(mni_template_file(name)))
        data = np.asarray(img.dataobj, np.float32)
        maps.append(data / max(float(data.max()), 1e-12))
    gm, wm, t1 = maps
    brain = gaussian_filter((t1 > 0.2 * t1.max()).astype(np.float32), 0.7)
    return gm, wm, brain, img.affine


def native_t1_grid(head: HeadGeometry, settings: T1Settings, rng: np.random.Generator
                   ) -> np.ndarray:
    """The T1w voxel -> native mm affine: axis-aligned (RAS), centred near the brain centre.

    Parameters
    ----------
    head : HeadGeometry
        The subject's head (brain centre, size).
    settings : T1Settings
        T1w grid shape and voxel size (mm).
    rng : Generator
        Draws the offset of the grid centre.
    """
    affine = np.diag([settings.voxel_mm] * 3 + [1.0])
    extent = (np.asarray(settings.shape) - 1) * settings.voxel_mm
    affine[:3, 3] = head.native_centre + 4.0 * rng.standard_normal(3) - extent / 2
    return affine


def synthetic_t1(head: HeadGeometry, affine: np.ndarray, settings: T1Settings,
                 rng: np.random.Generator) -> np.ndarray:
    """The T1w image of a subject on the grid ``(settings.shape, affine)``, float32.

    Parameters
    ----------
    head : HeadGeometry
    affine : ndarray of shape (4, 4)
        T1w voxel -> native mm (from :func:`native_t1_grid`).
    settings : T1Settings
    rng : numpy.random.Generator
        Bias field and noise.

    Returns
    -------
    ndarray of shape ``settings.shape``
        Unitless intensity, white matter about 1.
    """
    gm, wm, brain, template_affine = _tissue_templates()
    shape = tuple(settings.shape)
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    native = ijk @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    mni = head.mni_from_native(native)
    src = np.linalg.inv(template_affine)
    coords = (mni @ src[:3, :3].T + src[:3, 3]).T
    sample = lambda volume: map_coordinates(volume, coords, order=1, mode="constant",  # noqa: E731
                                            cval=0.0).reshape(shape)
    g, w, b = sample(gm), sample(wm), sample(brain)
    total = np.maximum(g + w, 1.0)
    g, w = g / total, w / total
    csf = np.clip(b - g - w, 0.0, None)
    image = _INTENSITY["wm"] * w + _INTENSITY["gm"] * g + _INTENSITY["csf"] * csf
    # Smooth bias: a 4x4x4 random lattice interpolated (cubic) over the field of view.
    lattice = rng.standard_normal((4, 4, 4))
    scaled = ijk.T * (3.0 / np.maximum(np.asarray(shape, np.float32)[:, None] - 1, 1))
    bias = map_coordinates(lattice, scaled, order=3, mode="nearest").reshape(shape)
    bias *= settings.bias_amplitude / max(float(np.abs(bias).max()), 1e-12)
    image = image * (1.0 + bias) + settings.noise_sd * rng.standard_normal(shape)
    return np.clip(image, 0.0, None).astype(np.float32)
