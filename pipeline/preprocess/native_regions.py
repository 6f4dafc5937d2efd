"""Atlas regions on a scan's own (native) PET grid, frame by frame, and their TACs.

Regions are built once on the MNI analysis grid (:func:`pipeline.regions.build_masks`) and
pulled into the PET grid through the inverse transforms: a PET voxel of frame ``k`` is taken
to the motion reference (``reference_from_frame_k``), to the T1w (``t1_from_pet``, the
inverse of the coregistration) and to MNI (the ``mni_from_t1`` coordinate field of the
normalization); the region weights are read there by trilinear interpolation. The dynamic
frames themselves are never interpolated: each frame's TAC value is the weighted mean of its
own voxels under that frame's masks (:func:`pipeline.regions.extract_tacs`).

A region that is binary on the MNI grid (atlas labels thresholded, spheres, masks) stays
binary: its weights are interpolated trilinearly and thresholded at 0.5, the usual way of
resampling a label image, which keeps the region's volume and its sharp edge. Regions with
fractional MNI weights (``weights: probability``) keep the interpolated weights. Keeping
the interpolated weights of binary regions instead spreads every region by about a voxel
into its neighbours (a blur of the mask that the MNI analysis does not have): on the
simulated benchmark, once the coregistration was unbiased (:mod:`pipeline.preprocess.
synthetic_pet`), it biased every regional BP_ND by -3.7 % (median) against the MNI
analysis, binary weights by -0.7 % (4 scans, 112 values; |difference| median 3.68 % vs
1.12 %). (With the earlier, 0.4 mm biased coregistration the fractional weights had been
the better of the two, 5.5 % vs 7.4 %: a sharp thin reference ribbon follows a
misregistration fully.)
BLAS runs single-threaded here: the products are small (n x 3 by 3 x 3), and on a busy
machine OpenBLAS threads made them 8x slower.

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
from pipeline.preprocess.tissue_regions import GreyMatter
from pipeline.regions import RegionMasks, extract_tacs
from pipeline.regions.extract import RegionTacs
from pipeline.space import voxel_volume_ml

__all__ = ["extract_native_tacs", "iter_frame_masks", "native_region_masks"]


class _Sampler:
    """Pulls MNI region weights onto an extended PET lattice for any rigid PET transform.

    Only voxels that can touch a region are sampled: at set-up, every voxel of the extended
    lattice is taken to MNI (no motion), and for each region the voxels that fall within
    ``margin_mm`` of its support are kept (``margin_mm`` must exceed the largest motion
    displacement of any frame; :func:`iter_frame_masks` sets it from the transforms).
    """

    def __init__(self, mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                 t1_from_pet: np.ndarray, shape: tuple[int, int, int], affine: np.ndarray,
                 margin_mm: float = 8.0, fov_margin_mm: float = 30.0,
                 grey_matter: GreyMatter | None = None) -> None:
        self.masks, self.field, self.shape = mni_masks, mni_from_t1, tuple(shape[:3])
        self.binary = [bool(np.all((w == 0) | (w == 1))) for w in mni_masks.weights]
        self.grey_matter = grey_matter
        self.affine = np.asarray(affine, float)
        self.t1_from_pet = np.asarray(t1_from_pet, float)
        voxel = np.linalg.norm(self.affine[:3, :3], axis=0)
        pad = np.ceil(fov_margin_mm / voxel).astype(int)
        near_bits = self._near_regions(margin_mm)
        ijk = self._lattice(np.asarray(self.shape) + 2 * pad, pad, near_bits)
        nearest = np.rint(self._mni_voxel(ijk, np.eye(4))).astype(np.int64)
        valid = np.all((nearest >= 0) & (nearest < np.asarray(mni_masks.shape)), axis=1)
        bits = np.zeros((len(ijk), near_bits.shape[0]), np.uint64)
        bits[valid] = near_bits[(slice(None), *nearest[valid].T)].T
        self.candidates = [np.flatnonzero(bits[:, r // 64] & np.uint64(1 << (r % 64)))
                           for r in range(len(mni_masks.names))]
        used = np.unique(np.concatenate(self.candidates))
        self.ijk = ijk[used]
        self.candidates = [np.searchsorted(used, c) for c in self.candidates]
        inside = np.all((self.ijk >= 0) & (self.ijk < np.asarray(self.shape)), axis=1)
        self.inside = [inside[c] for c in self.candidates]
        self.flat = [np.ravel_multi_index(tuple(self.ijk[c[i]].astype(np.intp).T), self.shape)
                     for c, i in zip(self.candidates, self.inside, strict=True)]

    def _near_regions(self, margin_mm: float) -> np.ndarray:
        """Bit masks on the MNI grid: bit r of word r // 64 is set within ``margin_mm`` of
        region r (distance transforms inside each region's bounding box)."""
        from scipy.ndimage import distance_transform_edt

        masks = self.masks
        sampling = np.linalg.norm(masks.affine[:3, :3], axis=0)
        reach = np.ceil(margin_mm / sampling).astype(int) + 1
        words = np.zeros((-(-len(masks.names) // 64), *masks.shape), np.uint64)
        for r in range(len(masks.names)):
            support = np.argwhere(masks.weights[r] > 0)
            lo = np.maximum(support.min(0) - reach, 0)
            hi = np.minimum(support.max(0) + reach + 1, np.asarray(masks.shape))
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            near = distance_transform_edt(masks.weights[r][box] <= 0,
                                          sampling=sampling) <= margin_mm
            words[(r // 64, *box)] |= near.astype(np.uint64) << np.uint64(r % 64)
        return words

    def _lattice(self, extent: np.ndarray, pad: np.ndarray, near_bits: np.ndarray
                 ) -> np.ndarray:
        """PET voxel indices (n, 3) of the extended lattice that may touch a region: a
        coarse pass (every 4th voxel) keeps the 4x4x4 blocks around voxels that land near
        some region."""
        step = 4
        coarse = (np.indices(tuple(-(-extent // step))).reshape(3, -1).T * step
                  - pad).astype(np.float64)
        nearest = np.rint(self._mni_voxel(coarse, np.eye(4))).astype(np.int64)
        shape = np.asarray(self.masks.shape)
        # Coarse points see blocks of up to ``step`` PET voxels (plus the margin already in
        # the bits), so test them against the bits dilated by one block.
        any_near = np.any(near_bits != 0, axis=0)
        from scipy.ndimage import binary_dilation

        voxel = float(np.max(np.linalg.norm(self.affine[:3, :3], axis=0)))
        mni_voxel = float(np.min(np.linalg.norm(self.masks.affine[:3, :3], axis=0)))
        any_near = binary_dilation(any_near, iterations=max(1, int(np.ceil(
            2 * step * voxel / mni_voxel))))
        valid = np.all((nearest >= 0) & (nearest < shape), axis=1)
        keep = np.zeros(len(coarse), bool)
        keep[valid] = any_near[tuple(nearest[valid].T)]
        offsets = np.indices((step,) * 3).reshape(3, -1).T - step // 2
        blocks = (coarse[keep][:, None, :] + offsets[None]).reshape(-1, 3)
        inside = np.all((blocks >= -pad) & (blocks < extent - pad), axis=1)
        return np.unique(blocks[inside], axis=0)

    def _t1_points(self, ijk: np.ndarray, reference_from_frame: np.ndarray) -> np.ndarray:
        """T1w-world points (n, 3), mm, of PET voxels ``ijk`` of a frame."""
        chain = self.t1_from_pet @ reference_from_frame @ self.affine
        return np.asarray(ijk, np.float64) @ chain[:3, :3].T + chain[:3, 3]

    def _mni_voxel(self, ijk: np.ndarray, reference_from_frame: np.ndarray,
                   t1: np.ndarray | None = None) -> np.ndarray:
        """MNI-grid voxel coordinates (n, 3) of PET voxels ``ijk`` of a frame."""
        if t1 is None:
            t1 = self._t1_points(ijk, reference_from_frame)
        inverse = np.linalg.inv(self.masks.affine)
        return self.field(t1) @ inverse[:3, :3].T + inverse[:3, 3]

    def masks_for(self, reference_from_frame: np.ndarray) -> RegionMasks:
        t1 = self._t1_points(self.ijk, reference_from_frame)
        coords = self._mni_voxel(self.ijk, reference_from_frame, t1)
        restricted = self.grey_matter.thresholds if self.grey_matter else {}
        n = len(self.masks.names)
        weights = np.zeros((n, *self.shape), np.float32)
        inside_sum, all_sum = np.zeros(n), np.zeros(n)
        flat_weights = weights.reshape(n, -1)
        for r, cand in enumerate(self.candidates):
            values = map_coordinates(self.masks.weights[r], coords[cand].T, order=1,
                                     mode="constant", cval=0.0)
            if self.binary[r]:
                values = (values >= 0.5).astype(values.dtype)
            else:
                values[values < 1e-3] = 0.0
            if self.masks.names[r] in restricted:
                keep = values > 0
                fraction = self.grey_matter.fraction(t1[cand[keep]])
                values[np.flatnonzero(keep)[fraction < restricted[self.masks.names[r]]]] = 0.0
            inside = self.inside[r]
            flat_weights[r, self.flat[r]] = values[inside]
            inside_sum[r] = values[inside].sum(dtype=np.float64)
            all_sum[r] = values.sum(dtype=np.float64)
        vox_ml = voxel_volume_ml(self.affine)
        outside = np.where(all_sum > 0, 1.0 - inside_sum / np.maximum(all_sum, 1e-12), 1.0)
        return RegionMasks(
            names=list(self.masks.names), weights=weights, reference=self.masks.reference,
            shape=self.shape, affine=self.affine, voxel_volume_ml=vox_ml,
            n_voxels=np.array([np.count_nonzero(flat_weights[r, self.flat[r]])
                               for r in range(n)]),
            volume_ml=inside_sum * vox_ml, outside_fov_fraction=outside,
            region_set=self.masks.region_set,
            provenance={**self.masks.provenance, "space": "native PET grid (regions pulled "
                        "from MNI through the inverse transforms)"})


def _motion_margin(reference_from_frame: np.ndarray, affine: np.ndarray,
                   shape: tuple[int, ...]) -> float:
    """Largest displacement (mm) of any field-of-view corner by any frame's transform,
    plus 6 mm for interpolation and the head-size scaling to MNI."""
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)]) @ np.asarray(affine, float).T
    moved = np.einsum("nij,pj->npi", np.asarray(reference_from_frame, float), corners)
    return float(np.linalg.norm(moved - corners[None], axis=2).max()) + 6.0


def native_region_masks(mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                        t1_from_pet: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
                        reference_from_frame: np.ndarray | None = None, *,
                        grey_matter: GreyMatter | None = None) -> RegionMasks:
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
    grey_matter : GreyMatter, default=None
        The subject's grey matter: its regions (given in ``mni_masks`` without their
        grey-matter restriction, :func:`~pipeline.preprocess.tissue_regions.
        split_grey_matter_restriction`) keep the PET voxels at or above their threshold.

    Returns
    -------
    RegionMasks
        On the PET grid; ``affine`` is the PET affine (scanner mm, not MNI).
    """
    from threadpoolctl import threadpool_limits

    matrix = np.eye(4) if reference_from_frame is None else np.asarray(reference_from_frame,
                                                                        float)
    with threadpool_limits(limits=1, user_api="blas"):
        sampler = _Sampler(mni_masks, mni_from_t1, t1_from_pet, tuple(shape[:3]), affine,
                           margin_mm=_motion_margin(matrix[None], affine, shape),
                           grey_matter=grey_matter)
        return sampler.masks_for(matrix)


def iter_frame_masks(mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                     t1_from_pet: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
                     reference_from_frame: np.ndarray, *,
                     grey_matter: GreyMatter | None = None) -> Iterator[RegionMasks]:
    """The masks of the motion reference, then of every frame in turn (one frame's masks in
    memory at a time).

    ``reference_from_frame`` is ``(n_frames, 4, 4)``; other arguments as in
    :func:`native_region_masks`. Yields ``n_frames + 1`` RegionMasks, the reference first.
    """
    from threadpoolctl import threadpool_limits

    matrices = np.asarray(reference_from_frame, float)
    with threadpool_limits(limits=1, user_api="blas"):
        sampler = _Sampler(mni_masks, mni_from_t1, t1_from_pet, tuple(shape[:3]), affine,
                           margin_mm=_motion_margin(matrices, affine, shape),
                           grey_matter=grey_matter)
        yield sampler.masks_for(np.eye(4))
        for matrix in matrices:
            yield sampler.masks_for(matrix)


def extract_native_tacs(data: np.ndarray, mni_masks: RegionMasks, mni_from_t1: CoordinateField,
                        t1_from_pet: np.ndarray, affine: np.ndarray,
                        reference_from_frame: np.ndarray, *, source: str | None = None,
                        grey_matter: GreyMatter | None = None
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
    grey_matter : GreyMatter, default=None
        As in :func:`native_region_masks`.

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
                                   reference_from_frame, grey_matter=grey_matter)
    reference = next(frame_masks)
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
    return out, replace(reference, outside_fov_fraction=worst_outside)
