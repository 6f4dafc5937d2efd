"""Decide, per scan, whether it is analysed as is or preprocessed first.

``preprocessing`` (config) is ``auto`` (default: preprocess what is not in MNI space),
``on`` (preprocess every scan: motion correction, coregistration, normalization) or ``off``
(analyse as is: a scan detected in scanner space is then refused, never analysed with
misplaced regions). Space detection is :func:`pipeline.space.detect_space`;
:func:`image_space` runs it on a file. Neither imports ANTs, so ``petbp check`` can report
the plan of every scan without the preprocessing extra installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.space_detection import SpaceEvidence, detect_space

if TYPE_CHECKING:
    from pipeline.bids.scan import Scan

__all__ = ["MODES", "ScanPlan", "cached_image_space", "cached_image_spaces", "find_t1w",
           "image_space", "plan_scan", "space_cache_path", "write_scan_plan"]

#: Allowed values of the ``preprocessing`` config key.
MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class ScanPlan:
    """What happens to one scan before analysis.

    Attributes
    ----------
    preprocess : bool
        True: motion correction, coregistration to ``t1w``, normalization, native-space
        regions. False: analysed as is (MNI space).
    evidence : SpaceEvidence
    t1w : Path or None
    summary : str
        One line for ``petbp check``.
    """

    preprocess: bool
    evidence: SpaceEvidence
    t1w: Path | None
    summary: str


def image_space(image_path: str | PathLike, mean: np.ndarray | None = None) -> SpaceEvidence:
    """Detect the space of a PET image file (time-averaged over its frames).

    Reads the header codes, the file name's ``space-`` entity and the data: the file is
    decompressed once and averaged over frames in its stored type (integers: one scaling of
    the mean, no float copy of the 4D image), so a 2 mm scan costs its decompression.

    Parameters
    ----------
    image_path : path-like
        A 3D or 4D NIfTI image.
    mean : ndarray (3D), default=None
        Its time-averaged data when already loaded (only the header is read then).

    Returns
    -------
    SpaceEvidence

    Raises
    ------
    InputError
        If the image cannot be read, or holds infinite values.
    """
    return _image_space(Path(image_path), mean)


def _image_space(path: Path, mean: np.ndarray | None = None,
                 decoded: Callable[[SpaceEvidence, Any, np.ndarray | None], None] | None = None
                 ) -> SpaceEvidence:
    """:func:`image_space`; ``decoded(evidence, image, stored values)`` is called after
    detection with the decoded file (:func:`pipeline.bids.images.decode_nifti`'s
    image and values, not to be modified) when the data were read here."""
    import zlib

    n_inf = 0
    raw = None
    try:
        if mean is None:
            img, raw, mean, n_inf = _time_mean(path)
        else:
            import nibabel as nib

            img = nib.load(str(path))
    except (OSError, ValueError, EOFError, zlib.error, MemoryError) as err:
        raise InputError(format_problem(path, f"the image cannot be read ({err})",
                                        "Give a readable NIfTI image.")) from err
    if n_inf:
        raise InputError(format_problem(
            path, f"the image holds {n_inf} infinite values",
            "Export the image again without infinities (check its scaling and units)."))
    match = re.search(r"_space-([A-Za-z0-9]+)", path.name)
    evidence = detect_space(mean, img.affine, shape=img.shape,
                            sform_code=int(img.header["sform_code"]),
                            qform_code=int(img.header["qform_code"]),
                            bids_space=match.group(1) if match else None)
    if decoded is not None and raw is not None:
        decoded(evidence, img, raw)
    return evidence


def _time_mean(path: Path):
    """(image, its stored values or None, mean over frames as float32 with NaN read as 0,
    number of infinite values).

    Integer data are summed as integers (float64 accumulator) and scaled once: the same
    numbers as scaling every voxel first, without the float32 copy of the whole scan. The
    stored values are those :func:`pipeline.bids.images.decode_nifti` decoded (a
    ``.nii.gz``; None for a ``.nii``), so the file can be loaded without decoding again."""
    from pipeline.bids.images import decode_nifti

    img, stored = decode_nifti(path, mmap=False)
    proxy = img.dataobj
    raw = np.asanyarray(proxy.get_unscaled()) if stored is None else stored
    slope, inter = np.asarray(proxy.slope, float), np.asarray(proxy.inter, float)
    frames = raw.shape[3] if raw.ndim == 4 else 1
    if raw.dtype.kind in "iu" and slope.size == 1 and inter.size == 1:
        total = raw.sum(axis=3, dtype=np.float64) if raw.ndim == 4 else raw.astype(np.float64)
        mean = (total / frames) * float(slope) + float(inter)
        return img, stored, mean.astype(np.float32), 0
    data = np.asarray(proxy, np.float32)
    n_inf = int(np.isinf(data).sum())
    total = np.nansum(data, axis=3, dtype=np.float64) if data.ndim == 4 else \
        np.nan_to_num(data).astype(np.float64)
    return img, stored, (total / frames).astype(np.float32), n_inf


def find_t1w(image_path: str | PathLike) -> Path | None:
    """The subject's T1w for a BIDS PET file: ``<sub>[/<ses>]/anat/*_T1w.nii[.gz]`` of the
    same session, else of the subject (first in name order), else None.

    Parameters
    ----------
    image_path : path-like
        A ``sub-<l>/[ses-<s>/]pet/*_pet.nii[.gz]`` file.
    """
    path = Path(image_path)
    pet_dir = path.parent
    candidates = []
    for folder in (pet_dir.parent / "anat", pet_dir.parent.parent / "anat"):
        candidates += sorted(folder.glob("*_T1w.nii.gz")) + sorted(folder.glob("*_T1w.nii"))
    return candidates[0] if candidates else None


def plan_scan(image_path: str | PathLike, mode: str = "auto", *,
              evidence: SpaceEvidence | None = None) -> ScanPlan:
    """The preprocessing plan of one scan under ``mode``.

    Parameters
    ----------
    image_path : path-like
        The PET image.
    mode : {"auto", "on", "off"}, default="auto"
    evidence : SpaceEvidence, default=None
        Precomputed space detection (else :func:`image_space` runs).

    Returns
    -------
    ScanPlan

    Raises
    ------
    ConfigError
        For an unknown mode.
    InputError
        For a scanner-space scan with ``off``, or a scan to preprocess without a T1w.
    """
    if mode not in MODES:
        raise ConfigError(format_problem(
            "config, preprocessing", f"unknown value {mode!r}",
            f"Choose one of: {', '.join(MODES)} (auto: preprocess scans not in MNI space)."))
    path = Path(image_path)
    evidence = evidence or image_space(path)
    why = "; ".join(evidence.reasons)
    if mode == "off" and evidence.space == "scanner":
        raise InputError(format_problem(
            path, f"this image is in scanner (native) space, not MNI152: {why}. With "
            "'preprocessing: off' it would be analysed with misplaced regions",
            "Set 'preprocessing: auto' (or 'on') in the config and add the subject's T1w "
            "(anat/sub-<label>_T1w.nii.gz) so petbp corrects motion, coregisters and "
            "normalizes it; or give images already normalized to MNI152."))
    preprocess = mode == "on" or (mode == "auto" and evidence.space == "scanner")
    t1w = find_t1w(path)
    if preprocess and t1w is None:
        raise InputError(format_problem(
            path, f"this scan needs preprocessing ({'preprocessing: on' if mode == 'on' else why}"
            f"), which needs the subject's T1w image, and none was found in "
            f"{path.parent.parent / 'anat'}",
            "Add anat/sub-<label>_T1w.nii.gz to the subject (BIDS), or give images already "
            "normalized to MNI152 (and set 'preprocessing: off' if their detection is wrong)."))
    if preprocess:
        summary = (f"{evidence.describe()}: motion correction, coregistration to {t1w.name}, "
                   "T1w normalization to MNI152, regions in native space")
    else:
        summary = f"{evidence.describe()}: analysed as is"
    return ScanPlan(preprocess=preprocess, evidence=evidence, t1w=t1w, summary=summary)


def write_scan_plan(image_path: str | PathLike, mode: str, out_json: str | PathLike) -> ScanPlan:
    """Write a scan's plan (``<scan>_desc-space.json``): space, evidence, preprocessing, T1w.

    Raises as :func:`plan_scan` (nothing is written then).

    Parameters
    ----------
    image_path : path-like
        The PET image.
    mode : {"auto", "on", "off"}
        The ``preprocessing`` config value.
    out_json : path-like
        The plan file.
    """
    from pipeline.tables import provenance, write_json

    plan = plan_scan(image_path, mode)
    evidence = plan.evidence
    write_json(out_json, provenance(
        Description="Space of a PET image and the preprocessing it gets.",
        Sources=[str(image_path)], Mode=mode, Space=evidence.space,
        Preprocess=plan.preprocess, T1w=str(plan.t1w) if plan.t1w else None,
        Correlation=evidence.correlation, BestShiftMM=evidence.best_shift_mm,
        BestRotationDeg=evidence.best_rotation_deg, FovOverlap=evidence.fov_overlap,
        SformCode=evidence.sform_code, QformCode=evidence.qform_code,
        BidsSpace=evidence.bids_space, Confident=evidence.confident,
        Reasons=evidence.reasons, Summary=plan.summary))
    return plan


def cached_image_space(image: str | PathLike | Scan, cache_json: str | PathLike | None, *,
                       loaded_cache: str | PathLike | None = None) -> SpaceEvidence:
    """:func:`image_space`, remembered in ``cache_json`` while the image file is unchanged.

    Detection decodes the whole image (about 0.1-0.3 s for a 2 mm dynamic scan); the workflow
    needs it every time it is parsed (by every cluster job too), so the evidence is kept with
    the file's resolved path, size and modification time and detected again when any
    changes. A cache that cannot be written (read-only folder) only costs the detection.

    Parameters
    ----------
    image : path-like or Scan
        The PET image, or its scan (:class:`pipeline.bids.Scan`).
    cache_json : path-like or None
        Where the evidence is kept (a working file, written atomically); None detects
        without keeping it.
    loaded_cache : path-like, default=None
        For a Scan detected in MNI space (analysed as is, unless ``preprocessing: on``)
        whose file had to be decoded here: the folder of loaded images
        (:mod:`pipeline.bids.image_cache`) where the scan is stored as its TAC step would
        store it, so that step reads the copy instead of decompressing the file again. An
        image that cannot be stored (one :func:`pipeline.bids.load_pet` refuses, a full
        disk) is left to that step, which reads it and reports.

    Returns
    -------
    SpaceEvidence
    """
    import dataclasses

    from pipeline.tables import write_json

    scan = image if hasattr(image, "image_path") else None
    path = Path(scan.image_path if scan is not None else image)
    keep = None
    if loaded_cache is not None and scan is not None:
        def keep(evidence, img, raw):
            if evidence.space == "mni":
                from pipeline.bids.image_cache import store_decoded

                store_decoded(scan, loaded_cache, img, raw)
    if cache_json is None:
        return image_space(path) if keep is None else _image_space(path, decoded=keep)
    stamp, evidence = _stored_space(path, cache_json)
    if evidence is not None:
        return evidence
    cache = Path(cache_json)
    evidence = image_space(path) if keep is None else _image_space(path, decoded=keep)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, {"stamp": stamp, "evidence": dataclasses.asdict(evidence)})
    except OSError:
        pass  # not writable here: detected again next time
    return evidence


#: Bumped when detection changes, so evidence cached by an older petbp is not reused.
_CACHE_VERSION = 2


def _stored_space(path: Path, cache_json: str | PathLike) -> tuple[dict, SpaceEvidence | None]:
    """The image's stamp (resolved path, size, modification time) and the evidence kept in
    ``cache_json`` for exactly that stamp, or None."""
    import json

    stat = path.stat()
    stamp = {"image": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
             "version": _CACHE_VERSION}
    try:
        stored = json.loads(Path(cache_json).read_text())
        if stored.get("stamp") == stamp:
            evidence = dict(stored["evidence"])
            if evidence.get("best_rotation_deg") is None:  # NaN is written as null
                evidence["best_rotation_deg"] = float("nan")
            return stamp, SpaceEvidence(**evidence)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass  # none yet, unreadable or old: detect again
    return stamp, None


def cached_image_spaces(images: list[str | PathLike | Scan], cache_folder: str | PathLike,
                        workers: int | None = None, *,
                        loaded_cache: str | PathLike | None = None
                        ) -> list[SpaceEvidence | InputError]:
    """:func:`cached_image_space` of many images, ``workers`` at a time in threads.

    Detection spends its time in zlib, numpy and scipy.ndimage calls that release the GIL,
    so two threads detect two images at once on two cores (a new study's first parse
    decodes every image: 36 2 mm scans took about 0.35 s each on one core). Evidence kept
    from an earlier parse is looked up first, in this thread: pure Python, which two
    threads only slow down (1,000 kept images: 0.10-0.14 s in one thread, 0.26-0.41 s in
    two).

    Parameters
    ----------
    images : list of path-like or Scan
        The PET images (or their scans).
    cache_folder : path-like
        Where the evidence is kept (:func:`space_cache_path`).
    workers : int, default=None
        Threads; None: as many as the CPUs this process may use, at most 2 (each holds a
        decoded image: about 2 x its float32 size at the peak).
    loaded_cache : path-like, default=None
        Where the scans analysed as is are stored once decoded (:func:`cached_image_space`).

    Returns
    -------
    list
        Per image, in order: its :class:`SpaceEvidence`, or the :class:`InputError` that
        says why it could not be read (to be reported with the others').
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    def one(image):
        path = getattr(image, "image_path", image)
        try:
            return cached_image_space(image, space_cache_path(path, cache_folder),
                                      loaded_cache=loaded_cache)
        except InputError as err:
            return err

    found: list[SpaceEvidence | InputError | None] = []
    for image in images:
        path = Path(getattr(image, "image_path", image))
        try:
            found.append(_stored_space(path, space_cache_path(path, cache_folder))[1])
        except OSError:  # missing or unreadable: detection says why
            found.append(None)
    todo = [i for i, evidence in enumerate(found) if evidence is None]
    if workers is None:
        workers = min(2, len(os.sched_getaffinity(0)))
    if workers <= 1 or len(todo) <= 1:
        detected = [one(images[i]) for i in todo]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            detected = list(pool.map(one, [images[i] for i in todo]))
    for i, evidence in zip(todo, detected, strict=True):
        found[i] = evidence
    return found


def space_cache_path(image_path: str | PathLike, folder: str | PathLike) -> Path:
    """Where :func:`cached_image_space` keeps an image's evidence in ``folder``: one JSON
    file per image, named by a digest of its resolved path.

    Parameters
    ----------
    image_path : path-like
        The PET image.
    folder : path-like
        The cache folder (the workflow uses ``.snakemake/petbp/space`` in Snakemake's working
        directory, which a dry run may write, so a new output folder parses fast too).
    """
    import hashlib

    digest = hashlib.sha1(str(Path(image_path).resolve()).encode()).hexdigest()[:20]
    return Path(folder) / f"{digest}.json"
