"""A brain phantom on the MNI152 grid: tissue-class fractions per voxel, and PSF blurring.

Each voxel holds fractions of tissue classes (summing to at most 1; the rest is CSF, with no
activity). Named regions come from petbp's region config (``config/regions.yaml``, built by
:func:`pipeline.regions.build_masks` on the same grid as the analysis, so the simulated
regions are the analysed ones); the rest of the brain is cortical grey matter and white
matter from nilearn's MNI152 tissue-probability templates (shipped with nilearn). Inside a
deep (subcortical) region all brain tissue belongs to the region; inside a cortical region
(ACC, insula, occipital) its grey-matter part does and its white-matter part stays white
matter.

The scanner's resolution is a Gaussian point-spread function applied to the noiseless
activity. Blurring is linear, so the blurred image of a scan is the sum over classes of the
blurred class-fraction map times the class TAC: each map is blurred once per subject, not
once per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from pipeline.errors import ConfigError, format_problem
from pipeline.space import mni_grid, voxel_volume_ml

__all__ = [
    "CORTICAL_REGIONS",
    "Phantom",
    "blur",
    "build_phantom",
    "phantom_mixing",
    "tissue_fractions",
]

#: Regions whose white-matter part is not counted as region tissue.
CORTICAL_REGIONS = frozenset({"acc", "insula_l", "insula_r", "occipital", "cortex"})

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def tissue_fractions(gm: np.ndarray, wm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey- and white-matter fractions scaled down where they add up to more than 1.

    Parameters
    ----------
    gm, wm : ndarray
        Tissue probabilities on one grid (unitless, 0-1); modified in place and returned.
    """
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    return gm, wm


@dataclass(frozen=True)
class Phantom:
    """Tissue-class fractions on a grid.

    Attributes
    ----------
    shape : tuple of int
    affine : ndarray of shape (4, 4)
        Voxel -> MNI mm.
    voxel_size : float
        mm.
    classes : list of str
        Tissue classes (named regions, then ``cortex`` and ``white_matter``).
    fractions : ndarray of shape (n_classes, *shape), float32
        Fraction of each voxel occupied by each class.
    region_names : list of str
        Regions of the region config (mask order).
    region_weights : ndarray of shape (n_regions, *shape), float32
        The analysis masks (for PV mixing and truth checks).
    source : str
        Where the regions came from.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    voxel_size: float
    classes: list[str]
    fractions: np.ndarray
    region_names: list[str]
    region_weights: np.ndarray
    source: str

    @property
    def voxel_ml(self) -> float:
        """Voxel volume, mL."""
        return voxel_volume_ml(self.affine)


def _grid(size: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """The MNI152 grid of ``size`` mm: the standard one for 2 and 3 mm, else the same box."""
    if size in (2.0, 3.0):
        return mni_grid(int(size))
    shape = tuple(round(extent / size) + 1 for extent in (180.0, 216.0, 180.0))
    affine = np.diag([-size, size, size, 1.0])
    affine[:3, 3] = [90.0, -126.0, -72.0]
    return shape, affine


def _template(kind: str, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """A nilearn MNI152 (1 mm) tissue template sampled linearly at the grid's voxel centres.

    The template is first smoothed to the grid's voxel size (Gaussian of FWHM = voxel
    size), so each value approximates the tissue fraction of the whole voxel.
    """
    from nilearn import datasets
    from scipy.ndimage import map_coordinates

    loader = {"gm": datasets.load_mni152_gm_template,
              "wm": datasets.load_mni152_wm_template}[kind]
    img = loader()
    data = np.asarray(img.dataobj, dtype=np.float32)
    step = float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) ** (1.0 / 3.0)
    src_size = float(abs(np.linalg.det(img.affine[:3, :3]))) ** (1.0 / 3.0)
    data = blur(data, step, src_size) if step > src_size else data
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    src = np.linalg.inv(img.affine)
    coords = src[:3, :3] @ world + src[:3, 3:4]
    values = map_coordinates(data, coords, order=1, mode="constant", cval=0.0)
    return np.clip(values.reshape(shape), 0.0, 1.0).astype(np.float32)


def build_phantom(voxel_size: float = 3.0, *, classes: list[str],
                  regions_config: str | PathLike | None = None) -> Phantom:
    """Build the phantom on the MNI152 grid of ``voxel_size`` mm.

    Parameters
    ----------
    voxel_size : float, default=3.0
        mm, 1.5-10; 2 and 3 give the grids of :func:`pipeline.space.mni_grid`, other sizes
        the same box (corner voxel at (90, -126, -72) mm).
    classes : list of str
        Simulated tissue classes; must include ``cortex`` and ``white_matter``. Regions of
        the config that are not classes are left as background tissue.
    regions_config : path-like, default=None
        Region config; None means petbp's default ``config/regions.yaml``.

    Returns
    -------
    Phantom

    Raises
    ------
    ConfigError
        If the voxel size is outside 1.5-10 mm or the background classes are missing.
    """
    from pipeline.regions import DEFAULT_REGION_CONFIG, build_masks, load_region_config

    size = float(voxel_size)
    if not 1.5 <= size <= 10.0:
        raise ConfigError(format_problem(
            "simulate voxel_size", f"{voxel_size} mm is outside 1.5-10 mm",
            "Use 2 or 3 mm (the standard MNI152 grids); smaller voxels need GBs of memory."))
    missing = {"cortex", "white_matter"} - set(classes)
    if missing:
        raise ConfigError(format_problem(
            "simulate classes", f"missing background class(es) {', '.join(sorted(missing))}",
            "Keep 'cortex' and 'white_matter' among the simulated tissue classes."))
    shape, affine = _grid(size)
    config = regions_config or DEFAULT_REGION_CONFIG
    masks = build_masks(load_region_config(config), shape, affine)
    gm, wm = tissue_fractions(_template("gm", shape, affine), _template("wm", shape, affine))
    brain = gm + wm
    fractions = np.zeros((len(classes), *shape), np.float32)
    claimed = np.zeros(shape, np.float32)
    wm_left = wm.copy()
    for i, name in enumerate(masks.names):
        if name not in classes:
            continue
        weight = masks.weights[i].astype(np.float32)
        weight = np.minimum(weight, 1.0 - claimed)
        if name in CORTICAL_REGIONS:
            fractions[classes.index(name)] += weight * gm
        else:
            fractions[classes.index(name)] += weight * brain
            wm_left -= weight * wm
        claimed += weight
    fractions[classes.index("cortex")] = (1.0 - claimed) * gm
    fractions[classes.index("white_matter")] = np.clip(wm_left, 0.0, None)
    return Phantom(shape=shape, affine=affine, voxel_size=size, classes=list(classes),
                   fractions=fractions, region_names=list(masks.names),
                   region_weights=masks.weights, source=str(config))


def blur(volumes: np.ndarray, fwhm: float, voxel_size: float) -> np.ndarray:
    """Gaussian blur of each volume in ``volumes`` (..., x, y, z) by an isotropic PSF.

    Parameters
    ----------
    volumes : ndarray of shape (..., nx, ny, nz)
    fwhm : float
        Full width at half maximum, mm (0 = no blur).
    voxel_size : float
        mm.
    """
    volumes = np.asarray(volumes)
    if fwhm <= 0:
        return volumes.copy()
    sigma_vox = fwhm * _FWHM_TO_SIGMA / voxel_size
    sigma = (0.0,) * (volumes.ndim - 3) + (sigma_vox,) * 3
    return gaussian_filter(volumes, sigma=sigma, mode="constant", truncate=3.0)


def phantom_mixing(phantom: Phantom, fwhm: float = 6.0) -> pd.DataFrame:
    """Partial-volume weights of each class in each analysed region after PSF blurring.

    Row ``r``, column ``c``: mean over region ``r``'s mask of the blurred fraction of class
    ``c`` (so a region TAC measured on the blurred image is ``sum_c w_rc TAC_c``). Feed it
    to :func:`pipeline.simulate.simulate_region_tacs` as ``pv_mixing``.

    Parameters
    ----------
    phantom : Phantom
        Tissue-class fractions and region masks.
    fwhm : float, default=6.0
        PSF, mm.

    Returns
    -------
    DataFrame
        Index: region names; columns: classes.
    """
    blurred = blur(phantom.fractions, fwhm, phantom.voxel_size)
    weights = phantom.region_weights.reshape(len(phantom.region_names), -1).astype(float)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    classes = np.ascontiguousarray(blurred.reshape(len(phantom.classes), -1), dtype=float)
    matrix = weights @ classes.T
    return pd.DataFrame(matrix, index=phantom.region_names, columns=phantom.classes)
