"""Region masks on a PET grid: build, check, cache.

:func:`build_masks` turns a :class:`~pipeline.regions.config.RegionSet` into one weight
image per region on a given voxel grid, built on the PET grid's lattice enlarged to cover the
MNI brain, so the part outside the field of view is known (``outside_fov_fraction``) and
erosion near its edge behaves as if the image went on.

Steps per region: atlas labels (union; probabilities summed, clipped to 1, thresholded),
sphere or user mask; hemisphere; erosion; grey-matter restriction; removal of excluded
regions (before exclusion, dilated by ``exclude_margin_mm``). Checks: no empty region, no
forbidden overlap, enough reference voxels inside the field of view.

Caching: in memory (8 grids; one thread builds) and, with a cache folder (``cache_dir`` or
``$PETBP_REGION_CACHE``), on disk as ``regions-<hash of config digest>-<grid digest>.npz``;
the digest covers the config text and the size and modification time of every atlas/mask file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.regions.atlas import iter_label_maps
from pipeline.regions.config import RegionSet, RegionSpec
from pipeline.regions.grey_matter import grey_matter_probability
from pipeline.space import check_overlap, voxel_volume_ml

__all__ = ["RegionMasks", "build_masks", "label_image"]

_MEMORY: OrderedDict[tuple[str, str], RegionMasks] = OrderedDict()
_MEMORY_SIZE = 8
_BUILDING = threading.Lock()


@dataclass(frozen=True)
class RegionMasks:
    """Region weights on one voxel grid.

    Attributes
    ----------
    names : list of str
        Region names, in config order.
    weights : ndarray of shape (n_regions, *shape), float32
        Weight of each voxel in each region, 0-1 (0/1 for binary regions).
    reference : str
        The reference region's name.
    shape : tuple of int
        Spatial grid shape.
    affine : ndarray of shape (4, 4)
        Grid voxel -> MNI mm.
    voxel_volume_ml : float
        Volume of one voxel, mL.
    n_voxels : ndarray of shape (n_regions,), int
        Voxels with weight > 0 inside the field of view.
    volume_ml : ndarray of shape (n_regions,)
        Sum of weights times voxel volume inside the field of view, mL.
    outside_fov_fraction : ndarray of shape (n_regions,)
        Fraction of the region's weight that lies outside the field of view (0-1).
    region_set : str
        The region-set label (``desc-<region_set>``).
    provenance : dict
        Config file, digest, atlases (with licences): copied into sidecars.
    """

    names: list[str]
    weights: np.ndarray
    reference: str
    shape: tuple[int, int, int]
    affine: np.ndarray
    voxel_volume_ml: float
    n_voxels: np.ndarray
    volume_ml: np.ndarray
    outside_fov_fraction: np.ndarray
    region_set: str = "regions"
    provenance: dict[str, Any] = field(default_factory=dict)

    def index(self, name: str) -> int:
        """Position of region ``name`` in :attr:`names`."""
        return self.names.index(name)

    def summary(self) -> list[dict[str, Any]]:
        """One record per region: name, n_voxels, volume_ml, outside_fov_fraction, reference."""
        return [{"region": n, "n_voxels": int(self.n_voxels[i]),
                 "volume_ml": float(self.volume_ml[i]),
                 "outside_fov_fraction": float(self.outside_fov_fraction[i]),
                 "reference": n == self.reference} for i, n in enumerate(self.names)]


def build_masks(region_set: RegionSet, shape: tuple[int, ...], affine: np.ndarray, *,
                source: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None) -> RegionMasks:
    """Build every region of a region set on a voxel grid.

    Parameters
    ----------
    region_set : RegionSet
        From :func:`pipeline.regions.load_region_config`.
    shape : tuple of int
        Grid shape (a 4D shape is fine: the first three axes are used).
    affine : ndarray of shape (4, 4)
        Grid voxel -> MNI mm.
    source : str or path-like, default=None
        The image the grid comes from, named in field-of-view errors.
    cache_dir : str or path-like, default=None
        On-disk mask cache; None uses ``$PETBP_REGION_CACHE`` if set, else memory only.

    Returns
    -------
    RegionMasks

    Raises
    ------
    InputError
        If the grid does not overlap the MNI brain (not in MNI space), a region lies wholly
        outside the field of view, or the reference has too few voxels inside it.
    ConfigError
        If a region is empty after resampling, thresholding, erosion or exclusion, or
        regions overlap where ``allow_overlap`` forbids it.
    """
    shape, affine = tuple(int(n) for n in shape[:3]), np.asarray(affine, float)
    grid_key = hashlib.sha256(repr((shape, np.round(affine, 5).tolist())).encode()).hexdigest()
    key = (region_set.digest, grid_key)
    # one thread builds (jobs run as threads); cached masks passed the overlap check already
    with _BUILDING:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
        check_overlap(shape, affine, source=source)
        folder = os.environ.get("PETBP_REGION_CACHE") if cache_dir is None else cache_dir
        # named by a hash of the whole digest: derived sets extend it ("<digest>-no-grey-matter")
        name = f"regions-{hashlib.sha256(key[0].encode()).hexdigest()[:16]}-{key[1][:16]}.npz"
        cache_file = Path(folder) / name if folder else None
        masks = _load_cached(cache_file, region_set, shape, affine) if cache_file else None
        if masks is None:
            masks = _build(region_set, shape, affine, source)
            if cache_file is not None:
                _save_cached(cache_file, masks)
        _MEMORY[key] = masks
        if len(_MEMORY) > _MEMORY_SIZE:  # one added at a time
            _MEMORY.popitem(last=False)
        return masks


def label_image(masks: RegionMasks) -> np.ndarray:
    """One integer label per voxel: 0 = no region, i + 1 = region ``masks.names[i]``; a voxel
    in several regions gets the one with the largest weight (the first on ties).

    Parameters
    ----------
    masks : RegionMasks
        Region weights on a grid.
    """
    labels = np.argmax(masks.weights, axis=0).astype(np.int16) + 1
    labels[~np.any(masks.weights > 0, axis=0)] = 0
    return labels


def _extended_grid(shape: tuple[int, int, int], affine: np.ndarray
                   ) -> tuple[tuple[int, int, int], np.ndarray, tuple[slice, ...]]:
    """The grid's lattice enlarged to cover the MNI brain (+10 mm), and the original's slice."""
    from pipeline.space import mni_brain_points

    points = mni_brain_points()
    lo_mm, hi_mm = points[:, :3].min(0) - 10.0, points[:, :3].max(0) + 10.0
    corners = np.array([[x, y, z, 1.0] for x in (lo_mm[0], hi_mm[0])
                        for y in (lo_mm[1], hi_mm[1]) for z in (lo_mm[2], hi_mm[2])])
    ijk = (corners @ np.linalg.inv(affine).T)[:, :3]
    lo = np.minimum(0, np.floor(ijk.min(0))).astype(int)
    hi = np.maximum(np.asarray(shape) - 1, np.ceil(ijk.max(0))).astype(int)
    ext_shape = tuple(int(n) for n in hi - lo + 1)
    shift = np.eye(4)
    shift[:3, 3] = lo
    inner = tuple(slice(-int(a), -int(a) + n) for a, n in zip(lo, shape, strict=True))
    return ext_shape, affine @ shift, inner


def _world(shape: tuple[int, int, int], affine: np.ndarray, axis: int) -> np.ndarray:
    """MNI coordinate (mm) along ``axis`` of every voxel centre, float32 array of ``shape``."""
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
    row = affine[axis].astype(np.float32)
    return (row[0] * i[:, None, None] + row[1] * j[None, :, None] + row[2] * k[None, None, :]
            + row[3])


def _edge_distance(support: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Distance (``sampling`` units) from each voxel of ``support`` to the nearest outside one."""
    from scipy.ndimage import distance_transform_edt

    padded = np.pad(support, 1)
    return distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1]


def _distance_to(target: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Distance (``sampling`` units) from every voxel to the nearest voxel of ``target``."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~target, sampling=sampling)


def _build(region_set: RegionSet, shape: tuple[int, int, int], affine: np.ndarray,
           source: str | os.PathLike | None) -> RegionMasks:
    ext_shape, ext_affine, inner = _extended_grid(shape, affine)
    voxel_mm = np.linalg.norm(affine[:3, :3], axis=0)
    probabilities = _atlas_sums(region_set, ext_shape, ext_affine)
    gm = None
    if any(spec.grey_matter is not None for spec in region_set.regions.values()):
        gm = grey_matter_probability(ext_shape, ext_affine, region_set.grey_matter_map)
    names = region_set.names
    weights = np.zeros((len(names), *ext_shape), np.float32)
    for row, spec in enumerate(region_set.regions.values()):
        weights[row] = _region_weights(spec, probabilities, gm, ext_shape, ext_affine,
                                       voxel_mm, region_set)
    del probabilities, gm
    # Exclusions use the other regions' masks before their own exclusions.
    excluded_names = {o for spec in region_set.regions.values() for o in spec.exclude}
    before = {o: weights[names.index(o)] > 0 for o in excluded_names}
    for row, (name, spec) in enumerate(region_set.regions.items()):
        for other in spec.exclude:
            excluded = before[other]
            if spec.exclude_margin_mm > 0:
                excluded = _distance_to(excluded, voxel_mm) <= spec.exclude_margin_mm
            weights[row][excluded] = 0.0
        if not np.any(weights[row] > 0):
            raise ConfigError(format_problem(
                f"{region_set.path}, region '{name}'",
                f"the region is empty after excluding {', '.join(spec.exclude)}",
                "Remove the exclusion or reduce exclude_margin_mm."))
    _check_overlaps(region_set, weights)
    total = weights.reshape(len(names), -1).sum(axis=1, dtype=np.float64)
    inside = np.ascontiguousarray(weights[(slice(None), *inner)])
    del weights
    inside_sum = inside.reshape(len(names), -1).sum(axis=1, dtype=np.float64)
    n_voxels = np.count_nonzero(inside.reshape(len(names), -1) > 0, axis=1)
    vox_ml = voxel_volume_ml(affine)
    masks = RegionMasks(
        names=names, weights=inside, reference=region_set.reference,
        shape=shape, affine=affine, voxel_volume_ml=vox_ml, n_voxels=n_voxels,
        volume_ml=inside_sum * vox_ml, outside_fov_fraction=1.0 - inside_sum / total,
        region_set=region_set.name, provenance=_provenance(region_set))
    _check_fov(masks, region_set, source)
    return masks


def _atlas_sums(region_set: RegionSet, shape: tuple[int, int, int],
                affine: np.ndarray) -> dict[str, np.ndarray]:
    """Each atlas region's summed label probability, reading every atlas label once."""
    users: dict[str, tuple[Any, dict[int, list[str]]]] = {}
    for spec in region_set.regions.values():
        if spec.atlas is not None:
            _, by_index = users.setdefault(spec.atlas.name, (spec.atlas, {}))
            for index in spec.labels:
                by_index.setdefault(index, []).append(spec.name)
    sums: dict[str, np.ndarray] = {}
    for atlas, by_index in users.values():
        for index, label_map in iter_label_maps(atlas, list(by_index), shape, affine):
            for name in by_index[index]:
                if name in sums:
                    sums[name] += label_map
                else:
                    sums[name] = label_map.copy()
    for prob in sums.values():
        np.clip(prob, 0.0, 1.0, out=prob)
    return sums


def _region_weights(spec: RegionSpec, probabilities: dict, gm: np.ndarray | None,
                    shape: tuple[int, int, int], affine: np.ndarray, voxel_mm: np.ndarray,
                    region_set: RegionSet) -> np.ndarray:
    where = f"{region_set.path}, region '{spec.name}'"
    if spec.atlas is not None:
        prob = probabilities.pop(spec.name)
        weights = ((prob > 0) & (prob >= spec.threshold)).astype(np.float32)
        if spec.weights == "probability":
            weights *= prob
        step = f"resampling atlas '{spec.atlas.name}' and thresholding at {spec.threshold}"
        fix = "Lower 'threshold', or check the labels and that the grid is in MNI space."
    elif spec.sphere_center is not None:
        dist2 = sum((_world(shape, affine, axis) - c) ** 2
                    for axis, c in enumerate(spec.sphere_center))
        weights = (dist2 <= spec.sphere_radius ** 2).astype(np.float32)
        step = "placing the sphere on the grid"
        fix = "Increase 'radius' to at least the voxel size."
    else:
        weights = _user_mask(spec.mask, shape, affine)
        step = f"resampling the mask {spec.mask}"
        fix = "Check that the mask is non-empty and in MNI space."
    weights = weights.astype(np.float32)
    _require(weights, where, step, fix)
    if spec.hemisphere is not None:
        x = _world(shape, affine, 0)
        weights[(x >= 0) if spec.hemisphere == "left" else (x <= 0)] = 0.0
        _require(weights, where, f"restricting to the {spec.hemisphere} hemisphere (MNI x "
                 f"{'<' if spec.hemisphere == 'left' else '>'} 0)", "Check 'hemisphere'.")
    if spec.erode_mm > 0 or spec.erode_voxels > 0:
        distance = _edge_distance(weights > 0, voxel_mm)
        limit = max(spec.erode_mm, spec.erode_voxels * float(voxel_mm.max()))
        weights[distance <= limit] = 0.0
        _require(weights, where, f"eroding by {limit:g} mm", "Reduce erode_mm/erode_voxels.")
    if spec.grey_matter is not None:
        weights[gm < spec.grey_matter] = 0.0
        _require(weights, where, f"keeping grey-matter probability >= {spec.grey_matter}",
                 "Lower 'grey_matter'.")
    return weights


def _require(weights: np.ndarray, where: str, step: str, fix: str) -> None:
    if not np.any(weights > 0):
        raise ConfigError(format_problem(where, f"the region is empty after {step}", fix))


def _user_mask(path: Path, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    import nibabel as nib
    from nilearn.image import resample_img

    img = nib.load(str(path))
    data = (np.asarray(img.dataobj, np.float32) > 0.5).astype(np.int8)
    if data.ndim != 3:
        raise InputError(format_problem(path, f"a region mask must be 3D; got shape {data.shape}",
                                        "Give one 3D mask per region."))
    src = nib.Nifti1Image(data, img.affine)
    out = resample_img(src, target_affine=affine, target_shape=shape, interpolation="nearest",
                       force_resample=True, copy_header=True)
    return np.asarray(out.dataobj, np.float32)


def _check_overlaps(region_set: RegionSet, weights: np.ndarray) -> None:
    names = region_set.names
    support = weights.reshape(len(names), -1) > 0
    support = support[:, support.any(axis=0)].astype(np.float32)  # region voxels only
    shared = support @ support.T
    problems = [f"'{names[a]}' and '{names[b]}' share {int(shared[a, b])} voxels"
                for a in range(len(names)) for b in range(a + 1, len(names))
                if shared[a, b] > 0 and not region_set.overlap_allowed(names[a], names[b])]
    if problems:
        raise ConfigError(format_problem(
            f"{region_set.path}, allow_overlap", "overlapping regions: " + "; ".join(problems),
            "Add 'exclude: [<other region>]' to one region of each pair, raise a threshold, or "
            "list the pair under allow_overlap (e.g. allow_overlap: [[a, b]])."))


def _check_fov(masks: RegionMasks, region_set: RegionSet, source: Any) -> None:
    where = source or "PET image"
    for i, name in enumerate(masks.names):
        if masks.n_voxels[i] == 0:
            raise InputError(format_problem(
                where, f"region '{name}' of {region_set.path} lies wholly outside the image's "
                "field of view", "Check that the image is in MNI space and covers the brain, "
                "or remove the region from the config."))
    ref = masks.index(masks.reference)
    if masks.n_voxels[ref] < region_set.min_reference_voxels:
        raise InputError(format_problem(
            where, f"reference region '{masks.reference}' of {region_set.path} has "
            f"{masks.n_voxels[ref]} voxels inside the field of view (at least "
            f"{region_set.min_reference_voxels} needed; "
            f"{100 * masks.outside_fov_fraction[ref]:.0f}% of it is outside)",
            "Use a larger reference region, or lower min_reference_voxels in the config."))


def _provenance(region_set: RegionSet) -> dict[str, Any]:
    return {"config": str(region_set.path), "config_digest": region_set.digest,
            "region_set": region_set.name, "reference": region_set.reference,
            "atlases": [a.provenance() for a in region_set.atlases()],
            "grey_matter_map": str(region_set.grey_matter_map or
                                   "nilearn MNI152 grey-matter template")}


def _save_cached(path: Path, masks: RegionMasks) -> None:
    from pipeline.tables import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, weights=masks.weights, n_voxels=masks.n_voxels,
                            volume_ml=masks.volume_ml,
                            outside_fov_fraction=masks.outside_fov_fraction)


def _load_cached(path: Path, region_set: RegionSet, shape: tuple[int, int, int],
                 affine: np.ndarray) -> RegionMasks | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache file is rebuilt
    if arrays["weights"].shape != (len(region_set.names), *shape):
        return None
    return RegionMasks(names=region_set.names, weights=arrays["weights"],
                       reference=region_set.reference, shape=shape, affine=affine,
                       voxel_volume_ml=voxel_volume_ml(affine), n_voxels=arrays["n_voxels"],
                       volume_ml=arrays["volume_ml"], region_set=region_set.name,
                       outside_fov_fraction=arrays["outside_fov_fraction"],
                       provenance=_provenance(region_set))
