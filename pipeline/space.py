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

import functools
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = [
    "DEFAULT_MIN_FRACTION",
    "Grid",
    "check_overlap",
    "mni_brain_mask",
    "mni_brain_points",
    "mni_grid",
    "mni_template_file",
    "overlap_fraction",
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
    """Volume of one voxel in mL (|det| of the affine's 3x3 part, mm^3, / 1000).

    Parameters
    ----------
    affine : ndarray of shape (4, 4)
        Voxel -> mm transform.
    """
    return float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0


def mni_template_file(kind: str = "t1") -> Path:
    """A file of nilearn's bundled MNI152 (ICBM 2009a) templates at 1 mm, found without
    importing ``nilearn.datasets`` (which pulls in scikit-learn: seconds per process).

    Parameters
    ----------
    kind : {"t1", "gm", "wm"}, default="t1"
        The T1 template, or the grey- or white-matter probability map (0-255 integers).

    Returns
    -------
    Path
        The ``.nii.gz`` file inside the installed nilearn package.
    """
    import importlib.util

    if kind not in ("t1", "gm", "wm"):
        raise ValueError(f"mni_template_file: kind must be 't1', 'gm' or 'wm'; got {kind!r}")
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover
        raise InputError(format_problem(None, "the Python package 'nilearn' is not installed",
                                        "Install petbp's dependencies (pip install petbp)."))
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"


@functools.lru_cache(maxsize=1)
def _mni_t1() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template at 1 mm (float32) and its affine; read once per process."""
    import nibabel as nib

    img = nib.load(str(mni_template_file("t1")))
    data = np.asarray(img.dataobj, np.float32)
    data.flags.writeable = False  # shared by every caller
    return data, np.asarray(img.affine, float)


@functools.lru_cache(maxsize=1)
def mni_brain_mask() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 brain at 1 mm: a boolean array and its affine (voxel -> mm).

    nilearn's ICBM 2009a T1 template above 0.2 of its maximum, the definition of
    ``nilearn.datasets.load_mni152_brain_mask``. The array is shared: do not modify it.
    """
    data, affine = _mni_t1()
    mask = data > 0.2 * data.max()
    mask.flags.writeable = False
    return mask, affine


@functools.lru_cache(maxsize=1)
def mni_brain_points() -> np.ndarray:
    """World coordinates (mm) of MNI brain voxels on a 2 mm lattice, (n, 4) homogeneous.

    The brain of :func:`mni_brain_mask` taken at every second voxel (threshold at 0.2 of the
    maximum on that lattice).
    """
    t1, affine = _mni_t1()
    data = t1[::2, ::2, ::2]
    ijk = np.argwhere(data > 0.2 * data.max()) * 2
    homogeneous = np.column_stack([ijk, np.ones(len(ijk))])
    return homogeneous @ affine.T


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
        points = mni_brain_points()
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
