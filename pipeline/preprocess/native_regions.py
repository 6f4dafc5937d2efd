"""Atlas regions on a scan's own (native) PET grid, frame by frame, and their TACs.

Regions are built once on the MNI analysis grid (:func:`pipeline.regions.build_masks`) and
pulled into the PET grid through the inverse transforms: a PET voxel of frame ``k`` is taken
to the motion reference (``reference_from_frame_k``), to the T1w (``t1_from_pet``, the
inverse of the coregistration) and to MNI (the ``mni_from_t1`` coordinate field of the
normalization); the region weights are read there by trilinear interpolation. The dynamic
frames themselves are never interpolated: each frame's TAC value is the weighted mean of its
own voxels under that frame's masks (:func:`pipeline.regions.extract_tacs`).

Weights are fractional at region edges (partial voxels), as for probabilistic regions.
Field-of-view bookkeeping uses an extended lattice (the PET lattice enlarged by
``margin_mm``), as :func:`pipeline.regions.build_masks` does on MNI grids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from scipy.ndimage import map_coordinates

from pipeline.errors import InputError, format_problem
from pipeline.preprocess.fields import CoordinateField
from pipeline.regions import RegionMasks, extract_tacs
from pipeline.regions.extract import RegionTacs
from pipeline.space import voxel_volume_ml

__all__ = ["extract_native_tacs", "iter_frame_masks", "native_region_masks"]


class _Sampler:
    """Pulls MNI region weights onto an extended PET lattice for any rigid PET transform."""

    def __init__(self, mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                 t1_from_pet: np.ndarray, shape: tuple[int, int, int], affine: np.ndarray,
                 margin_mm: float = 30.0) -> None:
        self.masks, self.field, self.shape = mni_masks, mni_from_t1, tuple(shape[:3])
        self.affine, self.t1_from_pet = np.asarray(affine, float), np.asarray(t1_from_pet,
                                                                               float)
        voxel = np.linalg.norm(self.affine[:3, :3], axis=0)
        pad = np.ceil(margin_mm / voxel).astype(int)
        self.pad = pad
        ext = np.asarray(self.shape) + 2 * pad
        ijk = np.indices(tuple(ext), dtype=np.float32).reshape(3, -1).T - pad
        # Candidate voxels: those whose MNI position (no motion) is near some region.
        mni = self._mni(ijk, np.eye(4))
        support = np.any(mni_masks.weights > 0, axis=0)
        idx = np.argwhere(support)
        inverse = np.linalg.inv(mni_masks.affine)
        near = (mni @ inverse[:3, :3].T + inverse[:3, 3])
        slack = margin_mm / float(np.min(np.linalg.norm(mni_masks.affine[:3, :3], axis=0)))
        keep = np.all((near >= idx.min(0) - slack) & (near <= idx.max(0) + slack), axis=1)
        self.ijk = ijk[keep]
        inside = np.all((self.ijk >= 0) & (self.ijk < np.asarray(self.shape)), axis=1)
        self.inside = inside
        self.total = mni_masks.weights.reshape(len(mni_masks.names), -1).sum(
            axis=1, dtype=np.float64) * mni_masks.voxel_volume_ml

    def _mni(self, ijk: np.ndarray, reference_from_frame: np.ndarray) -> np.ndarray:
        chain = self.t1_from_pet @ reference_from_frame @ self.affine
        t1 = ijk @ chain[:3, :3].T + chain[:3, 3]
        return self.field(t1)

    def masks_for(self, reference_from_frame: np.ndarray) -> RegionMasks:
        mni = self._mni(self.ijk, reference_from_frame)
        inverse = np.linalg.inv(self.masks.affine)
        coords = (mni @ inverse[:3, :3].T + inverse[:3, 3]).T
        n = len(self.masks.names)
        sampled = np.stack([map_coordinates(self.masks.weights[r], coords, order=1,
                                            mode="constant", cval=0.0) for r in range(n)])
        sampled[sampled < 1e-3] = 0.0
        weights = np.zeros((n, *self.shape), np.float32)
        ijk_in = self.ijk[self.inside].astype(int)
        weights[:, ijk_in[:, 0], ijk_in[:, 1], ijk_in[:, 2]] = sampled[:, self.inside]
        vox_ml = voxel_volume_ml(self.affine)
        inside_sum = sampled[:, self.inside].sum(axis=1, dtype=np.float64)
        all_sum = sampled.sum(axis=1, dtype=np.float64)
        outside = np.where(all_sum > 0, 1.0 - inside_sum / np.maximum(all_sum, 1e-12), 1.0)
        return RegionMasks(
            names=list(self.masks.names), weights=weights, reference=self.masks.reference,
            shape=self.shape, affine=self.affine, voxel_volume_ml=vox_ml,
            n_voxels=np.count_nonzero(weights.reshape(n, -1) > 0, axis=1),
            volume_ml=inside_sum * vox_ml, outside_fov_fraction=outside,
            region_set=self.masks.region_set,
            provenance={**self.masks.provenance, "space": "native PET grid (regions pulled "
                        "from MNI through the inverse transforms)"})


def native_region_masks(mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                        t1_from_pet: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
                        reference_from_frame: np.ndarray | None = None) -> RegionMasks:
    """Region weights on a PET grid (the motion reference, or one frame).

    Parameters
    ----------
    mni_masks : RegionMasks
        Regions on an MNI grid (:func:`pipeline.regions.build_masks`).
    mni_from_t1 : CoordinateField
        From the normalization.
    t1_from_pet : ndarray of shape (4, 4)
        Motion-reference PET point -> T1w point, RAS mm (inverse of the coregistration).
    shape : tuple of int
        PET grid shape (spatial axes first).
    affine : ndarray of shape (4, 4)
        PET voxel -> scanner mm.
    reference_from_frame : ndarray of shape (4, 4), default=None
        A frame's point -> the motion reference; None = the reference itself.

    Returns
    -------
    RegionMasks
        On the PET grid; ``affine`` is the PET affine (scanner mm, not MNI).
    """
    sampler = _Sampler(mni_masks, mni_from_t1, t1_from_pet, tuple(shape[:3]), affine)
    matrix = np.eye(4) if reference_from_frame is None else reference_from_frame
    return sampler.masks_for(np.asarray(matrix, float))


def iter_frame_masks(mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                     t1_from_pet: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
                     reference_from_frame: np.ndarray) -> Iterator[RegionMasks]:
    """The region masks of every frame in turn (one frame's masks in memory at a time).

    ``reference_from_frame`` is ``(n_frames, 4, 4)``; other arguments as in
    :func:`native_region_masks`.
    """
    sampler = _Sampler(mni_masks, mni_from_t1, t1_from_pet, tuple(shape[:3]), affine)
    for matrix in np.asarray(reference_from_frame, float):
        yield sampler.masks_for(matrix)


def extract_native_tacs(data: np.ndarray, mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                        t1_from_pet: np.ndarray, affine: np.ndarray,
                        reference_from_frame: np.ndarray, *, source: str | None = None
                        ) -> tuple[RegionTacs, RegionMasks]:
    """Regional TACs of a scanner-space scan, each frame under its own masks.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames)
        Bq/mL, the scan as acquired (not motion-corrected).
    mni_masks, mni_from_t1, t1_from_pet, affine
        As in :func:`native_region_masks`.
    reference_from_frame : ndarray of shape (n_frames, 4, 4)
        From motion correction (inverses of ``frame_from_reference``).
    source : str, default=None
        The image, named in errors.

    Returns
    -------
    tacs : RegionTacs of shape (n_frames, n_regions)
        Bq/mL; ``nan_voxels``/``nan_fraction`` are the largest over frames.
    reference_masks : RegionMasks
        The masks of the motion reference (for sidecars and QC); its
        ``outside_fov_fraction`` is the largest over frames.

    Raises
    ------
    InputError
        If a region has no voxel inside the field of view in some frame.
    """
    if data.ndim != 4 or len(reference_from_frame) != data.shape[-1]:
        raise InputError(format_problem(
            source, f"need one transform per frame: {len(reference_from_frame)} transforms for "
            f"image shape {data.shape}", "Give the confounds of this scan's motion correction."))
    n_frames = data.shape[-1]
    rows, nan_voxels, nan_fraction = [], None, None
    worst_outside = np.zeros(len(mni_masks.names))
    frame_masks = iter_frame_masks(mni_masks, mni_from_t1, t1_from_pet, data.shape, affine,
                                   reference_from_frame)
    for k, masks in enumerate(frame_masks):
        empty = [name for name, n in zip(masks.names, masks.n_voxels, strict=True) if n == 0]
        if empty:
            raise InputError(format_problem(
                source, f"region(s) {', '.join(empty)} fall outside the PET field of view in "
                f"frame {k}", "Check the registration QC; the head may be partly outside the "
                "scanner's field of view."))
        tac = extract_tacs(np.asarray(data[..., k]), masks)
        rows.append(np.asarray(tac)[0])
        nan_voxels = tac.nan_voxels if nan_voxels is None else np.maximum(nan_voxels,
                                                                           tac.nan_voxels)
        nan_fraction = tac.nan_fraction if nan_fraction is None else np.maximum(
            nan_fraction, tac.nan_fraction)
        worst_outside = np.maximum(worst_outside, masks.outside_fov_fraction)
    out = np.asarray(rows).reshape(n_frames, -1).view(RegionTacs)
    out.nan_voxels, out.nan_fraction = nan_voxels, nan_fraction
    reference = native_region_masks(mni_masks, mni_from_t1, t1_from_pet, data.shape, affine)
    return out, replace(reference, outside_fov_fraction=worst_outside)
