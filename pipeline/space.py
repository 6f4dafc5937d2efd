"""Image grids and standard space: is a PET image in MNI space, and on which grid?

Atlases in petbp are in MNI152 space. A PET image can only be matched against them if it
was normalized to MNI space first; petbp does no registration. The only evidence of space
that an image carries is its affine (voxel -> millimetre) and its shape, so the check here
is geometric: how much of the MNI brain lies inside the image's field of view. A native-
space image (scanner coordinates, often with the origin at a corner of the volume)
covers little of the MNI brain and is refused with a message saying what to do.

The MNI brain used for the check is nilearn's MNI152 (ICBM 2009a) brain, sampled at 2 mm;
it ships with nilearn: nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = [
    "DEFAULT_MIN_FRACTION",
    "MNI_MAX_SHIFT_MM",
    "MNI_MIN_CORRELATION",
    "Grid",
    "SpaceEvidence",
    "check_overlap",
    "detect_space",
    "mni_grid",
    "overlap_fraction",
    "template_match",
    "voxel_volume_ml",
]

#: Smallest fraction of the MNI brain that must lie inside an image's field of view. A PET
#: field of view of 15 cm axially or more covers the whole brain (fraction near 1); a
#: scan cut at the vertex or the cerebellum still covers more than 0.7. Native-space
#: images with the origin at a corner typically cover less than 0.2.
DEFAULT_MIN_FRACTION = 0.5

Grid = tuple[tuple[int, int, int], np.ndarray]
"""A voxel grid: spatial shape and 4x4 affine (voxel indices -> mm)."""


def mni_grid(resolution: int = 2) -> Grid:
    """The common FSL/SPM MNI152 grid at 1, 2 or 3 mm (2 mm: 91 x 109 x 91, origin at AC).

    Parameters
    ----------
    resolution : int, default=2
        Voxel size in mm: 1, 2 or 3.

    Returns
    -------
    shape : tuple of int
        Spatial shape: (182, 218, 182), (91, 109, 91) or (61, 73, 61).
    affine : ndarray of shape (4, 4)
        Voxel -> MNI mm, LAS orientation (x decreasing with the first index), corner voxel
        centre at (90, -126, -72) mm.
    """
    shapes = {1: (182, 218, 182), 2: (91, 109, 91), 3: (61, 73, 61)}
    if resolution not in shapes:
        raise ValueError(f"mni_grid: resolution must be 1, 2 or 3 mm; got {resolution!r}")
    affine = np.diag([-float(resolution), float(resolution), float(resolution), 1.0])
    affine[:3, 3] = [90.0, -126.0, -72.0]
    return shapes[resolution], affine


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in mL (|det| of the affine's 3x3 part, mm^3, / 1000)."""
    return float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0


def _nilearn_data_file(name: str) -> Path:
    """A file of nilearn's bundled data (MNI152 templates), found without importing
    ``nilearn.datasets`` (which pulls in scikit-learn: seconds per process)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover
        raise InputError(format_problem(None, "the Python package 'nilearn' is not installed",
                                        "Install petbp's dependencies (pip install petbp)."))
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


@functools.lru_cache(maxsize=1)
def _mni_brain_points() -> np.ndarray:
    """World coordinates (mm) of MNI brain voxels on a 2 mm lattice, (n, 4) homogeneous.

    The brain is nilearn's MNI152 (ICBM 2009a) T1 template above 0.2 of its maximum, the
    definition of ``nilearn.datasets.load_mni152_brain_mask``, taken at every second voxel.
    """
    import nibabel as nib

    img = nib.load(str(_nilearn_data_file("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")))
    data = np.asarray(img.dataobj, np.float32)[::2, ::2, ::2]
    ijk = np.argwhere(data > 0.2 * data.max()) * 2
    homogeneous = np.column_stack([ijk, np.ones(len(ijk))])
    return homogeneous @ img.affine.T


def _check_grid(shape: Sequence[int], affine: np.ndarray, source: str | PathLike | None) -> None:
    affine = np.asarray(affine, float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(format_problem(
            source, f"the image affine is not a finite 4x4 matrix (got shape {affine.shape})",
            "Fix the image header (qform/sform)."))
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(format_problem(
            source, "the image affine is singular (zero voxel size)",
            "Fix the image header (qform/sform, pixdim)."))
    if len(shape) < 3 or any(int(n) < 1 for n in shape[:3]):
        raise InputError(format_problem(
            source, f"the image has shape {tuple(shape)}, not a 3D or 4D volume",
            "Give a 3D or 4D NIfTI image."))


def overlap_fraction(shape: Sequence[int], affine: np.ndarray, *,
                     reference: str | Grid = "mni") -> float:
    """Fraction of the reference brain that lies inside an image's field of view.

    Parameters
    ----------
    shape : sequence of int
        Image shape; only the first three (spatial) axes are used.
    affine : ndarray of shape (4, 4)
        Image voxel -> mm affine.
    reference : "mni" or (shape, affine), default="mni"
        ``"mni"``: the voxels of nilearn's MNI152 brain (2 mm lattice). A (shape, affine)
        grid: every voxel of that grid (e.g. an atlas's bounding box).

    Returns
    -------
    float
        Between 0 (no overlap) and 1 (the whole reference is inside the field of view).

    Examples
    --------
    >>> shape, affine = mni_grid(2)
    >>> round(overlap_fraction(shape, affine), 3)
    1.0
    """
    _check_grid(shape, affine, None)
    if isinstance(reference, str):
        if reference.lower() != "mni":
            raise ValueError(f"overlap_fraction: reference must be 'mni' or a grid; "
                             f"got {reference!r}")
        points = _mni_brain_points()
    else:
        ref_shape, ref_affine = reference
        ijk = np.indices(tuple(int(n) for n in ref_shape[:3])).reshape(3, -1).T
        points = np.column_stack([ijk, np.ones(len(ijk))]) @ np.asarray(ref_affine, float).T
    voxels = points @ np.linalg.inv(np.asarray(affine, float)).T
    extent = np.asarray([int(n) for n in shape[:3]], float)
    # A voxel's cube spans index +- 0.5, so the field of view is [-0.5, n - 0.5) per axis.
    inside = np.all((voxels[:, :3] >= -0.5) & (voxels[:, :3] < extent - 0.5), axis=1)
    return float(inside.mean())


def check_overlap(shape: Sequence[int], affine: np.ndarray, *,
                  source: str | PathLike | None,
                  reference: str | Grid = "mni",
                  min_fraction: float = DEFAULT_MIN_FRACTION) -> float:
    """Raise an :class:`InputError` if an image does not cover enough of the MNI brain.

    Parameters
    ----------
    shape : sequence of int
        Image shape (3D or 4D; the first three axes are spatial).
    affine : ndarray of shape (4, 4)
        Image voxel -> mm affine.
    source : str or path-like or None
        The image file, named in the error message.
    reference : "mni" or (shape, affine), default="mni"
        What the image must overlap; see :func:`overlap_fraction`.
    min_fraction : float, default=DEFAULT_MIN_FRACTION
        Smallest accepted fraction of the reference inside the field of view (0-1).

    Returns
    -------
    float
        The overlap fraction, when it is accepted.

    Raises
    ------
    InputError
        If the affine is unusable or the overlap is below ``min_fraction``.
    """
    _check_grid(shape, affine, source)
    fraction = overlap_fraction(shape, affine, reference=reference)
    if fraction < min_fraction:
        what = ("MNI152 brain" if isinstance(reference, str) else "atlas grid")
        raise InputError(format_problem(
            source,
            f"the image's field of view covers only {100 * fraction:.1f}% of the {what} "
            f"(at least {100 * min_fraction:.0f}% needed); its affine maps voxel (0,0,0) to "
            f"{_fmt_mm(np.asarray(affine, float)[:3, 3])} mm, so it is probably not in MNI "
            "space (native scanner space, or a header that lost its transform)",
            "Spatially normalize the PET images to MNI152 space before running petbp "
            "(e.g. with a T1-based normalization), or use a region config whose atlas is in "
            "the image's own space (a label image on the same grid)."))
    return fraction


def _fmt_mm(xyz: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in xyz) + ")"


# --- Which space is an image in? (scanner-space detection) ------------------------------

#: Smallest correlation with the MNI brain (at zero shift) for an image to be taken as MNI.
MNI_MIN_CORRELATION = 0.9
#: Largest offset (mm) of the best-matching shift for an image to be taken as MNI.
MNI_MAX_SHIFT_MM = 8.0
_MATCH_STEP_MM = 4.0
_MNI_SPACE_PREFIXES = ("mni", "icbm")


@dataclasses.dataclass(frozen=True)
class SpaceEvidence:
    """Which space an image is in, and why.

    Attributes
    ----------
    space : {"mni", "scanner"}
        ``mni``: analyse as is; ``scanner``: native space, needs preprocessing.
    bids_space : str or None
        The file name's ``space-`` label, if any.
    sform_code, qform_code : int
        NIfTI xform codes (0 unknown, 1 scanner, 2 aligned, 3 Talairach, 4 MNI).
    fov_overlap : float
        Fraction of the MNI brain inside the field of view (:func:`overlap_fraction`).
    correlation : float
        Correlation of the time-averaged image with the MNI brain, both smoothed, on a
        4 mm MNI grid, as the header places the image (-1 to 1).
    best_shift_mm : float
        Length of the shift (mm, up to 40) that maximizes that correlation: near 0 for an
        image in MNI space.
    confident : bool
        False for an ``mni`` decision near the thresholds (correlation below 0.95 or best
        shift over 4 mm): ``preprocessing: on`` is then the safe choice if a T1w exists.
    reasons : list of str
    """

    space: str
    bids_space: str | None
    sform_code: int
    qform_code: int
    fov_overlap: float
    correlation: float
    best_shift_mm: float
    confident: bool
    reasons: list[str]

    def describe(self) -> str:
        """One line for ``petbp check``: the space and the evidence."""
        return (f"{self.space} space (correlation with the MNI brain {self.correlation:.2f}, "
                f"best shift {self.best_shift_mm:.0f} mm, field of view covers "
                f"{100 * self.fov_overlap:.0f}% of it, sform/qform codes {self.sform_code}/"
                f"{self.qform_code}" + (f", space-{self.bids_space}" if self.bids_space
                                        else "") + ")")


@functools.lru_cache(maxsize=1)
def _mni_match_template() -> tuple[np.ndarray, np.ndarray]:
    """The MNI brain as a smoothed 0-1 map on a 4 mm grid (and that grid's affine)."""
    import nibabel as nib
    from scipy.ndimage import gaussian_filter

    img = nib.load(str(_nilearn_data_file("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")))
    data = np.asarray(img.dataobj, np.float32)
    brain = (data > 0.2 * data.max()).astype(np.float32)
    step = int(_MATCH_STEP_MM)
    shape = tuple(n // step for n in brain.shape)
    blocks = brain[:shape[0] * step, :shape[1] * step, :shape[2] * step]
    coarse = blocks.reshape(shape[0], step, shape[1], step, shape[2], step).mean((1, 3, 5))
    pad = 8                                          # 32 mm margin for shifts
    coarse = np.pad(coarse, pad)
    # Coarse voxel i (after padding) is the block of fine voxels around step (i - pad) +
    # (step - 1) / 2.
    to_fine = np.diag([float(step)] * 3 + [1.0])
    to_fine[:3, 3] = (step - 1) / 2.0 - step * pad
    return gaussian_filter(coarse, 1.5), img.affine @ to_fine


def template_match(mean_image: np.ndarray, affine: np.ndarray) -> tuple[float, float]:
    """How well an image, placed by its header, matches the MNI brain.

    Parameters
    ----------
    mean_image : ndarray (3D)
        Time-averaged PET (any units), NaN allowed.
    affine : ndarray of shape (4, 4)
        Voxel -> mm as the header says.

    Returns
    -------
    correlation : float
        Pearson correlation with the MNI brain on a 4 mm MNI grid, both smoothed (FWHM
        about 14 mm), at the header's placement.
    best_shift_mm : float
        Length of the integer 4 mm shift (up to 40 mm) of highest correlation.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    template, t_affine = _mni_match_template()
    ijk = np.indices(template.shape, dtype=np.float64).reshape(3, -1)
    world = t_affine[:3, :3] @ ijk + t_affine[:3, 3:4]
    inverse = np.linalg.inv(np.asarray(affine, float))
    src = inverse[:3, :3] @ world + inverse[:3, 3:4]
    voxel = float(np.cbrt(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))))
    image = gaussian_filter(np.nan_to_num(np.asarray(mean_image, np.float32)), 4.0 / voxel)
    moved = map_coordinates(image, src, order=1, mode="constant", cval=0.0)
    moved = gaussian_filter(moved.reshape(template.shape), 1.5)
    a = template - template.mean()
    b = moved - moved.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denominator <= 0:
        return 0.0, float("inf")
    spectrum = np.fft.irfftn(np.fft.rfftn(a) * np.conj(np.fft.rfftn(b)), s=a.shape)
    limit = round(40.0 / _MATCH_STEP_MM)
    offsets = np.indices((2 * limit + 1,) * 3).reshape(3, -1).T - limit
    values = spectrum[tuple((offsets % np.asarray(a.shape)).T)]
    peak = offsets[int(np.argmax(values))].astype(float)
    # Sub-voxel refinement: a parabola through the peak and its two neighbours per axis.
    for axis in range(3):
        around = [spectrum[tuple((peak.astype(int) + step * np.eye(3, dtype=int)[axis])
                                 % np.asarray(a.shape))] for step in (-1, 0, 1)]
        curvature = around[0] - 2.0 * around[1] + around[2]
        if curvature < 0:
            peak[axis] += float(np.clip(0.5 * (around[0] - around[2]) / curvature, -0.5, 0.5))
    return float(spectrum[0, 0, 0] / denominator), float(np.linalg.norm(peak)) * _MATCH_STEP_MM


def detect_space(mean_image: np.ndarray, affine: np.ndarray, *, shape: Sequence[int],
                 sform_code: int = 0, qform_code: int = 0, bids_space: str | None = None
                 ) -> SpaceEvidence:
    """Decide whether an image is in MNI space or in its scanner's (native) space.

    The data decide: an image is ``mni`` only if, as its header places it, its time-averaged
    activity correlates with the MNI brain at least :data:`MNI_MIN_CORRELATION` and no shift
    larger than :data:`MNI_MAX_SHIFT_MM` matches better. A ``space-`` label naming a
    non-MNI space (e.g. ``T1w``) makes it ``scanner`` whatever the match. Header codes are
    reported (a code 4 that the data contradict is named in the reasons) but decide nothing:
    ANTs and many scanners write code 1 for MNI and native images alike.

    Parameters
    ----------
    mean_image : ndarray (3D)
        Time-averaged PET.
    affine : ndarray of shape (4, 4)
    shape : sequence of int
        The image's shape (for the field-of-view overlap).
    sform_code, qform_code : int, default=0
    bids_space : str, default=None
        The ``space-`` entity of the file name (without ``space-``).

    Returns
    -------
    SpaceEvidence
    """
    correlation, shift = template_match(mean_image, affine)
    overlap = overlap_fraction(shape, affine)
    reasons = []
    data_mni = correlation >= MNI_MIN_CORRELATION and shift <= MNI_MAX_SHIFT_MM
    if data_mni:
        reasons.append(f"the image matches the MNI brain where its header puts it "
                       f"(correlation {correlation:.2f})")
    else:
        reasons.append(f"the image does not match the MNI brain where its header puts it "
                       f"(correlation {correlation:.2f}, need {MNI_MIN_CORRELATION}; the best "
                       f"match is {shift:.0f} mm away)")
    named_other = bids_space is not None and not bids_space.lower().startswith(
        _MNI_SPACE_PREFIXES)
    if named_other:
        reasons.append(f"its file name says space-{bids_space}, not an MNI space")
    if 4 in (sform_code, qform_code) and not data_mni:
        reasons.append("its header says MNI (xform code 4), but the data do not match")
    space = "mni" if data_mni and not named_other else "scanner"
    confident = space == "scanner" or (correlation >= 0.95 and shift <= 4.0)
    if not confident:
        reasons.append("the match is close to the thresholds: if this subject has a T1w, "
                       "'preprocessing: on' is the safe choice")
    return SpaceEvidence(space=space, bids_space=bids_space, sform_code=int(sform_code),
                         qform_code=int(qform_code), fov_overlap=overlap,
                         correlation=correlation, best_shift_mm=shift, confident=confident,
                         reasons=reasons)
