"""Tissue fractions of a subject's T1w: grey matter, white matter and CSF per voxel.

Regions with a grey-matter restriction (``grey_matter`` in the region config, e.g. the
occipital reference: cortex with grey-matter probability >= 0.5) are, in MNI space,
intersected with a population template. In a scan's own space the same restriction is
made with the subject's grey matter from the T1w, which lies where the subject's cortex
is, to within the rigid PET-T1w coregistration: atlas regions pulled through a non-linear
normalization are a millimetre or so off, and a thin cortical ribbon a millimetre off
reads low (its neighbours are white matter and CSF), biasing the reference TAC and so
every BP_ND.

Steps (numpy except N4):

1. brain mask: the MNI152 template brain (T1 above 20 % of its maximum, as the template's
   own brain extraction) pulled into T1w space through the normalization's
   ``mni_from_t1`` field;
2. N4 bias-field correction inside the mask (Tustison et al. 2010; ANTs);
3. the mean intensities of CSF, grey and white matter: a mixture of the three pure classes
   and of the partial-volume mixtures of adjacent classes (Santago & Gage 1993), fitted by
   maximum likelihood to the histogram of the corrected intensities inside the mask and
   started at the modes of the voxels that the template's tissue maps (pulled into T1w
   space) call pure;
4. partial-volume fractions: each voxel's intensity is taken as a mixture of the two
   adjacent classes (CSF and grey matter below the grey-matter mean, grey and white matter
   above it), as the partial-volume estimates of FSL FAST (Zhang et al. 2001) without its
   Markov random field.

The fractions are fractions of the voxel's volume, so a PET voxel's grey-matter fraction is
their average over the PET voxel (:func:`pet_voxel_average`), the partial-volume-consistent
way to bring them to a coarser grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from pipeline.errors import InputError, format_problem
from pipeline.preprocess.fields import CoordinateField

__all__ = ["SegmentSettings", "TissueFractions", "pet_voxel_average", "segment_t1"]

log = logging.getLogger(__name__)

#: Tissue classes, in increasing T1w intensity.
CLASSES = ("csf", "gm", "wm")


@dataclass(frozen=True)
class SegmentSettings:
    """Settings of :func:`segment_t1`.

    Attributes
    ----------
    n4_shrink_factor : int, default=4
        N4 runs on the T1w shrunk by this factor (the bias field is smooth).
    n4_spline_mm : float, default=200.0
        B-spline control-point spacing of the bias field, mm (ANTs' T1w default).
    threads : int, default=2
        ITK threads of N4.
    """

    n4_shrink_factor: int = 4
    n4_spline_mm: float = 200.0
    threads: int = 2


@dataclass
class TissueFractions:
    """Tissue fractions on the T1w grid.

    Attributes
    ----------
    gm, wm, csf : ndarray (3D), float32
        Fraction of each voxel's volume (0-1); zero outside the brain mask.
    brain : ndarray (3D), bool
        The brain mask.
    affine : ndarray of shape (4, 4)
        T1w voxel -> T1w world mm.
    class_means : dict of str to float
        Mean bias-corrected intensity of each class.
    notes : list of str
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    class_means: dict[str, float]
    notes: list[str] = field(default_factory=list)


def _template_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """nilearn's MNI152 2009a brain mask, GM and WM maps (1 mm, 0-1) and their affine."""
    import nibabel as nib

    from pipeline.space import mni_template_file

    maps = {}
    for name in ("t1", "gm", "wm"):
        img = nib.load(str(mni_template_file(name)))
        data = np.asarray(img.dataobj, np.float32)
        maps[name] = data / max(float(data.max()), 1e-12)
    return maps["t1"] > 0.2, maps["gm"], maps["wm"], img.affine


def _mni_points(shape: tuple[int, int, int], affine: np.ndarray,
                mni_from_t1: CoordinateField) -> np.ndarray:
    """MNI coordinates (n, 3) of every T1w voxel centre, in x-major order."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    return mni_from_t1(world)


def _prior_modes(values: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Start values of the class means: the histogram mode of the voxels each template
    tissue map gives at least 0.9 (0.5 when fewer than 100 voxels reach 0.9)."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    modes = []
    for k in range(priors.shape[1]):
        for level in (0.9, 0.5, 0.0):
            chosen = values[priors[:, k] >= level]
            if chosen.size >= 100:
                break
        counts, edges = np.histogram(chosen, bins=128, range=(lo, hi))
        modes.append(0.5 * (edges[counts.argmax()] + edges[counts.argmax() + 1]))
    return np.asarray(modes)


def _mixture_density(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Histogram density of three pure classes and the two partial-volume mixtures between
    adjacent ones (Santago & Gage 1993): pure ``N(mu_c, s^2)``; a mixture of classes a < b
    with a fraction ``t ~ U(0, 1)`` of b, ``(Phi((x - mu_a)/s) - Phi((x - mu_b)/s)) /
    (mu_b - mu_a)``."""
    from scipy.special import ndtr

    means, sd = np.sort(params[:3]), np.exp(params[3])
    weights = np.exp(params[4:] - params[4:].max())
    weights /= weights.sum()
    pure = np.exp(-0.5 * ((x[:, None] - means) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    mixed = [(ndtr((x - means[a]) / sd) - ndtr((x - means[a + 1]) / sd))
             / max(means[a + 1] - means[a], 1e-9) for a in (0, 1)]
    return np.column_stack([pure, *mixed]) @ weights


def _fit_class_means(values: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Means of CSF, grey and white matter: maximum likelihood of a partial-volume mixture
    (:func:`_mixture_density`) on the 256-bin histogram, started at the modes of the
    voxels the template calls pure (:func:`_prior_modes`)."""
    from scipy.optimize import minimize

    lo, hi = np.percentile(values, [0.1, 99.9])
    counts, edges = np.histogram(values, bins=256, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    start_means = _prior_modes(values, priors)
    start = np.concatenate([start_means, [np.log((hi - lo) / 50.0)], np.zeros(5)])

    def cost(params: np.ndarray) -> float:
        density = _mixture_density(params, centres) * (edges[1] - edges[0])
        return -float(counts @ np.log(np.maximum(density, 1e-300)))

    result = minimize(cost, start, method="Nelder-Mead",
                      options={"maxiter": 4000, "xatol": 1e-4 * (hi - lo), "fatol": 1e-3})
    return np.sort(result.x[:3])


def _partial_volumes(values: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(n, 3) CSF, GM, WM fractions of intensities mixing two adjacent classes."""
    csf_mean, gm_mean, wm_mean = means
    out = np.zeros((values.size, 3), np.float32)
    low = values < gm_mean
    gm_low = np.clip((values[low] - csf_mean) / (gm_mean - csf_mean), 0.0, 1.0)
    out[low, 1], out[low, 0] = gm_low, 1.0 - gm_low
    high = ~low
    wm_high = np.clip((values[high] - gm_mean) / (wm_mean - gm_mean), 0.0, 1.0)
    out[high, 2], out[high, 1] = wm_high, 1.0 - wm_high
    return out


def segment_t1(t1: np.ndarray, t1_affine: np.ndarray, mni_from_t1: CoordinateField,
               settings: SegmentSettings = SegmentSettings(), *,
               source: str | None = None) -> TissueFractions:
    """Grey-matter, white-matter and CSF fractions of every T1w voxel.

    Parameters
    ----------
    t1 : ndarray (3D)
        T1w intensities (with or without skull).
    t1_affine : ndarray of shape (4, 4)
        T1w voxel -> T1w world mm.
    mni_from_t1 : CoordinateField
        From the normalization (:func:`pipeline.preprocess.normalize_t1`).
    settings : SegmentSettings
    source : str, default=None
        The T1w file, named in errors.

    Returns
    -------
    TissueFractions

    Raises
    ------
    InputError
        If the class means are not ordered CSF < GM < WM (not a T1-weighted image, or a
        failed normalization).
    """
    from pipeline.preprocess.antsio import ants_threads, require_ants, to_ants

    ants = require_ants()
    shape = tuple(int(n) for n in t1.shape[:3])
    brain_map, gm_map, wm_map, template_affine = _template_maps()
    to_voxel = np.linalg.inv(template_affine)
    mni = _mni_points(shape, np.asarray(t1_affine, float), mni_from_t1)
    coords = (mni @ to_voxel[:3, :3].T + to_voxel[:3, 3]).T
    del mni
    brain = map_coordinates(brain_map.astype(np.float32), coords, order=1, mode="constant",
                            cval=0.0).reshape(shape) >= 0.5
    if brain.sum() < 1000:
        raise InputError(format_problem(
            source, "the MNI152 brain mask falls almost wholly outside this T1w image",
            "Check the normalization QC figure and that the T1w covers the head."))
    inside = np.flatnonzero(brain)
    priors_gm = map_coordinates(gm_map, coords[:, inside], order=1, mode="constant")
    priors_wm = map_coordinates(wm_map, coords[:, inside], order=1, mode="constant")
    del coords
    image = to_ants(np.nan_to_num(np.asarray(t1, np.float32)), t1_affine)
    mask = to_ants(brain.astype(np.float32), t1_affine)
    with ants_threads(settings.threads):
        corrected = ants.n4_bias_field_correction(
            image, mask=mask, shrink_factor=int(settings.n4_shrink_factor),
            spline_param=float(settings.n4_spline_mm)).numpy()
    values = corrected.reshape(-1)[inside].astype(np.float64)
    priors = np.column_stack([np.clip(1.0 - priors_gm - priors_wm, 0.0, 1.0), priors_gm,
                              priors_wm])
    means = _fit_class_means(values, priors)
    if not (means[0] < means[1] < means[2]):
        raise InputError(format_problem(
            source, f"tissue intensities are not ordered CSF < grey < white matter (class "
            f"means {np.round(means, 3).tolist()})", "Give a T1-weighted image, and check "
            "the normalization QC figure."))
    fractions = _partial_volumes(values, means)
    out = [np.zeros(shape, np.float32) for _ in CLASSES]
    for k, volume in enumerate(out):
        volume.reshape(-1)[inside] = fractions[:, k]
    log.info("T1w tissue classes: means CSF %.4g, GM %.4g, WM %.4g (bias-corrected); brain "
             "%.0f mL", *means, brain.sum() * abs(np.linalg.det(t1_affine[:3, :3])) / 1000)
    return TissueFractions(gm=out[1], wm=out[2], csf=out[0], brain=brain,
                           affine=np.asarray(t1_affine, float),
                           class_means=dict(zip(CLASSES, map(float, means), strict=True)))


def pet_voxel_average(fraction: np.ndarray, affine: np.ndarray, pet_voxel_mm: np.ndarray
                      ) -> np.ndarray:
    """A T1w-grid fraction averaged over PET-sized voxels centred at each T1w voxel.

    A PET voxel's tissue fraction is the mean of the fine fractions over its volume. The
    box of the PET voxel is replaced by the Gaussian with the same second moments (SD =
    voxel size / sqrt(12) per axis), which does not depend on how the PET grid is rotated
    relative to the T1w grid; sampling the result (trilinear) at a PET voxel centre gives its
    fraction.

    Parameters
    ----------
    fraction : ndarray (3D)
        Fractions on the T1w grid (0-1).
    affine : ndarray of shape (4, 4)
        T1w voxel -> mm.
    pet_voxel_mm : array-like of shape (3,)
        PET voxel size, mm.

    Returns
    -------
    ndarray (3D), float32
    """
    t1_voxel = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)
    box_sd = float(np.mean(np.asarray(pet_voxel_mm, float))) / np.sqrt(12.0)
    sigma = np.sqrt(np.maximum(box_sd ** 2 - t1_voxel ** 2 / 12.0, 0.0)) / t1_voxel
    return gaussian_filter(np.asarray(fraction, np.float32), sigma, mode="constant")
