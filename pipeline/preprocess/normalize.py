"""T1w -> MNI152 registration (affine, then SyN) once per subject, with ANTs.

The template is nilearn's MNI152 ICBM 2009a non-linear symmetric T1 (brain-extracted,
shipped inside the nilearn wheel: nothing is downloaded), resampled to ``resolution`` mm;
in BIDS terms the output space is ``MNI152NLin2009aSym``. The metric is computed inside the
template brain dilated by ``mask_margin_mm``, so a T1w with skull and scalp is matched on
its brain.

Stages: affine (Mattes mutual information, three levels), then SyN (Mattes, three levels,
``syn_iterations``). Results are the ANTs transform files and two coordinate fields
(:mod:`pipeline.preprocess.fields`): ``mni_from_t1`` on a 2 mm grid over the T1w's field of
view and ``t1_from_mni`` on the MNI analysis grid (:func:`pipeline.space.mni_grid`), plus
the T1w resampled to MNI for QC.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from pipeline.preprocess.antsio import ants_threads, from_ants, require_ants, to_ants
from pipeline.preprocess.fields import CoordinateField, coordinate_grid

__all__ = [
    "TEMPLATE_SPACE",
    "Normalization",
    "NormalizeSettings",
    "mni_template",
    "normalize_t1",
]

#: BIDS name of the template space.
TEMPLATE_SPACE = "MNI152NLin2009aSym"
_MNI_BOX = (np.array([-160.0, -200.0, -160.0]), np.array([160.0, 160.0, 180.0]))


@dataclass(frozen=True)
class NormalizeSettings:
    """Settings of :func:`normalize_t1`.

    Attributes
    ----------
    resolution : float, default=2.0
        Template voxel size the registration runs at, mm.
    affine_iterations : tuple of int, default=(100, 50, 25)
    affine_shrink_factors : tuple of int, default=(4, 2, 1)
    affine_smoothing_sigmas : tuple of float, default=(2.0, 1.0, 0.0)
        Voxels.
    syn_iterations : tuple of int, default=(100, 70, 40)
        SyN iterations at shrink factors 4, 2, 1 (with (40, 20, 10) the simulated
        benchmark's brain error was 0.96 mm median / 1.47 mm RMS; with these 0.76 / 1.31;
        neighbourhood cross-correlation did worse: 1.26 / 1.84).
    syn_metric : {"mattes", "CC"}, default="mattes"
        SyN similarity: Mattes mutual information or neighbourhood cross-correlation.
    syn_sampling : int, default=32
        Histogram bins (mattes) or neighbourhood radius in voxels (CC).
    grad_step : float, default=0.2
    flow_sigma : float, default=3.0
        Voxels: regularization of the update field.
    total_sigma : float, default=0.0
    sampling_rate : float, default=0.25
        Metric sampling of the affine stage.
    mask_margin_mm : float, default=10.0
        Dilation of the template brain mask, mm.
    threads : int, default=2
    """

    resolution: float = 2.0
    affine_iterations: tuple[int, ...] = (100, 50, 25)
    affine_shrink_factors: tuple[int, ...] = (4, 2, 1)
    affine_smoothing_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    syn_iterations: tuple[int, ...] = (100, 70, 40)
    syn_metric: str = "mattes"
    syn_sampling: int = 32
    grad_step: float = 0.2
    flow_sigma: float = 3.0
    total_sigma: float = 0.0
    sampling_rate: float = 0.25
    mask_margin_mm: float = 10.0
    threads: int = 2


@dataclass
class Normalization:
    """Result of :func:`normalize_t1`.

    Attributes
    ----------
    transforms : dict of str to Path
        ``affine`` (.mat), ``warp``, ``inverse_warp`` (.nii.gz): ANTs files (fixed = MNI).
    mni_from_t1 : CoordinateField
        On a T1w-space grid (2 mm).
    t1_from_mni : CoordinateField
        On the MNI analysis grid.
    t1_in_mni : ndarray
        The T1w on the MNI analysis grid (QC).
    template : ndarray
        The template on the MNI analysis grid (QC).
    mni_affine : ndarray of shape (4, 4)
        The MNI analysis grid.
    """

    transforms: dict[str, Path]
    mni_from_t1: CoordinateField
    t1_from_mni: CoordinateField
    t1_in_mni: np.ndarray
    template: np.ndarray
    mni_affine: np.ndarray


@functools.lru_cache(maxsize=2)
def mni_template(resolution: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """nilearn's MNI152 2009a T1 template (brain) at ``resolution`` mm: data and affine."""
    import nibabel as nib

    from pipeline.space import mni_template_file

    ants = require_ants()
    img = nib.load(str(mni_template_file("t1")))
    template = to_ants(np.asarray(img.dataobj, np.float32), img.affine)
    if abs(resolution - 1.0) > 1e-6:
        template = ants.resample_image(template, (resolution,) * 3, use_voxels=False,
                                       interp_type=0)
    return from_ants(template)


def _coordinate_images(shape: tuple[int, int, int], affine: np.ndarray) -> list:
    """Three ANTs images holding the x, y, z (RAS mm) of their own voxel centres."""
    ijk = np.indices(shape, dtype=np.float64)
    world = np.tensordot(affine[:3, :3], ijk, axes=(1, 0)) + affine[:3, 3, None, None, None]
    return [to_ants(world[axis].astype(np.float32), affine) for axis in range(3)]


def _field(fixed_shape, fixed_affine, moving_box, transforms, invert) -> CoordinateField:
    """Resample coordinate images of the moving space onto a fixed grid."""
    ants = require_ants()
    box_shape, box_affine = coordinate_grid(*moving_box, 4.0)
    fixed = to_ants(np.zeros(fixed_shape, np.float32), fixed_affine)
    data = [ants.apply_transforms(fixed, image, transformlist=[str(t) for t in transforms],
                                  whichtoinvert=invert, interpolator="linear").numpy()
            for image in _coordinate_images(box_shape, box_affine)]
    return CoordinateField(data=np.stack(data).astype(np.float32), affine=fixed_affine)


def _t1_box(shape, affine, margin: float) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)]) @ affine.T
    return corners[:, :3].min(0) - margin, corners[:, :3].max(0) + margin


def normalize_t1(t1: np.ndarray, t1_affine: np.ndarray, out_prefix: str | PathLike,
                 settings: NormalizeSettings = NormalizeSettings(), *,
                 mni_grid_resolution: int = 2) -> Normalization:
    """Register a T1w image to the MNI152 template (affine + SyN) and build the fields.

    Parameters
    ----------
    t1 : ndarray (3D)
        T1w intensities.
    t1_affine : ndarray of shape (4, 4)
        Voxel -> T1w world mm (RAS).
    out_prefix : path-like
        ANTs transform files are written as ``<out_prefix>_affine.mat``,
        ``<out_prefix>_warp.nii.gz`` and ``<out_prefix>_inversewarp.nii.gz``.
    settings : NormalizeSettings
    mni_grid_resolution : int, default=2
        The MNI analysis grid (:func:`pipeline.space.mni_grid`) of ``t1_from_mni``.

    Returns
    -------
    Normalization
    """
    from pipeline.space import mni_grid

    ants = require_ants()
    template, template_affine = mni_template(settings.resolution)
    margin = max(1, round(settings.mask_margin_mm / settings.resolution))
    mask = binary_dilation(template > 0.2 * template.max(), iterations=margin)
    fixed = to_ants(template, template_affine)
    fixed_mask = to_ants(mask.astype(np.float32), template_affine)
    moving = to_ants(np.nan_to_num(t1), t1_affine)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".normalize.", dir=out_prefix.parent))
    try:
        with ants_threads(settings.threads):
            affine_stage = ants.registration(
                fixed, moving, type_of_transform="Affine", mask=fixed_mask,
                mask_all_stages=True, aff_metric="mattes",
                aff_random_sampling_rate=settings.sampling_rate,
                aff_iterations=settings.affine_iterations,
                aff_shrink_factors=settings.affine_shrink_factors,
                aff_smoothing_sigmas=settings.affine_smoothing_sigmas,
                outprefix=str(work / "affine_"))
            syn = ants.registration(
                fixed, moving, type_of_transform="SyNOnly", mask=fixed_mask,
                initial_transform=affine_stage["fwdtransforms"][0],
                syn_metric=settings.syn_metric, syn_sampling=settings.syn_sampling,
                reg_iterations=settings.syn_iterations,
                grad_step=settings.grad_step, flow_sigma=settings.flow_sigma,
                total_sigma=settings.total_sigma, outprefix=str(work / "syn_"))
            warp = next(p for p in syn["fwdtransforms"] if p.endswith("Warp.nii.gz"))
            inverse = next(p for p in syn["invtransforms"] if p.endswith("InverseWarp.nii.gz"))
            files = {"affine": Path(f"{out_prefix}_affine.mat"),
                     "warp": Path(f"{out_prefix}_warp.nii.gz"),
                     "inverse_warp": Path(f"{out_prefix}_inversewarp.nii.gz")}
            for key, src in (("affine", affine_stage["fwdtransforms"][0]), ("warp", warp),
                             ("inverse_warp", inverse)):
                shutil.copyfile(src, files[key])
            forward = [files["warp"], files["affine"]]            # MNI point -> T1w point
            backward = [files["affine"], files["inverse_warp"]]   # T1w point -> MNI point
            mni_shape, mni_affine = mni_grid(mni_grid_resolution)
            t1_from_mni = _field(mni_shape, mni_affine, _t1_box(t1.shape, t1_affine, 60.0),
                                 forward, [False, False])
            field_shape, field_affine = coordinate_grid(*_t1_box(t1.shape, t1_affine, 0.0),
                                                        2.0)
            mni_from_t1 = _field(field_shape, field_affine, _MNI_BOX, backward,
                                 [True, False])
            reference = to_ants(np.zeros(mni_shape, np.float32), mni_affine)
            t1_in_mni = ants.apply_transforms(reference, moving, [str(f) for f in forward],
                                              interpolator="linear").numpy()
            template_grid = ants.resample_image_to_target(fixed, reference,
                                                          interp_type="linear").numpy()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Normalization(transforms=files, mni_from_t1=mni_from_t1, t1_from_mni=t1_from_mni,
                         t1_in_mni=t1_in_mni.astype(np.float32),
                         template=template_grid.astype(np.float32), mni_affine=mni_affine)
