"""Loading a PET scan's 4D image in Bq/mL, decay-corrected to injection, with checks.

Rule for NaN and Inf ("inside the brain"): any infinite value is an error; a voxel with
NaN in some frames but not all is an error (a corrupt frame inside the field of view).
Voxels that are NaN in every frame are outside the field of view when they connect to the
edge of the volume (a bounding box, or a brain cut off by a short axial field of view:
region extraction treats them as missing). NaN voxels that form a hole, not connected to
the edge, are an error if any lies inside the MNI152 brain (nilearn's template, 1 mm) at
its world coordinates, which is where petbp's atlases put regions. An image that is NaN
everywhere is an error.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from pipeline.bids.scan import Scan, read_scan
from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames, decay_correction_factors

__all__ = ["PetImage", "available_memory_bytes", "check_memory", "decode_nifti", "load_pet",
           "nonfinite_problem", "pet_from_decoded", "read_nifti"]

#: Bytes per voxel that loading needs: the float32 result plus one decoding buffer.
_BYTES_PER_VOXEL = 8


@dataclass
class PetImage:
    """A loaded dynamic PET image.

    Attributes
    ----------
    data : ndarray of float32, shape (x, y, z, n_frames)
        Activity in Bq/mL, decay-corrected to injection time.
    frames : Frames
        Frame times, minutes after injection.
    affine : ndarray of shape (4, 4)
        Voxel to world (mm) transform.
    scan : Scan or None
        The scan it came from.
    notes : list of str
        What was done on load (unit conversion, decay correction), for provenance.
    """

    data: np.ndarray
    frames: Frames
    affine: np.ndarray
    scan: Scan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        """Image dimensions (x, y, z, n_frames)."""
        return tuple(self.data.shape)


def available_memory_bytes() -> int:
    """Memory available to this process, bytes: ``MemAvailable`` and any cgroup limit."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 2**62
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            available = min(available, int(limit))
    except OSError:
        pass
    return int(available)


def check_memory(shape: tuple[int, ...], source: str | PathLike) -> None:
    """Raise :class:`InputError` if an image of ``shape`` would not fit in available memory.

    Loading needs about 8 bytes per voxel and frame (float32 result + decoding buffer).

    Parameters
    ----------
    shape : tuple of int
        Image dimensions from the header (x, y, z, frames).
    source : str or path-like
        The image, named in the error.
    """
    need = math.prod(int(d) for d in shape) * _BYTES_PER_VOXEL
    have = available_memory_bytes()
    if need > have:
        raise InputError(format_problem(
            source, f"the header's dimensions {tuple(shape)} need about {need / 2**30:.1f} GiB "
            f"to load, but only {have / 2**30:.1f} GiB of memory is available",
            "Check the header dimensions (a corrupt header?), or run on a machine with more "
            "memory, or crop/downsample the image."))


def _mni_brain_hits(ijk: np.ndarray, affine: np.ndarray) -> int:
    """How many voxels (rows of ``ijk``) lie inside the MNI152 brain mask."""
    from pipeline.space import mni_brain_mask

    mask_data, mask_affine = mni_brain_mask()
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    inv = np.linalg.inv(mask_affine)
    vox = np.rint(world @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    inside = np.all((vox >= 0) & (vox < np.array(mask_data.shape)), axis=1)
    vox = vox[inside]
    return int(mask_data[vox[:, 0], vox[:, 1], vox[:, 2]].sum())


def nonfinite_problem(data: np.ndarray, affine: np.ndarray) -> str | None:
    """Describe NaN/Inf voxels that matter (see the module's rule), or None if there are none.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames)
        The image, Bq/mL.
    affine : ndarray of shape (4, 4)
        Voxel -> mm transform (to place NaN holes against the MNI brain).
    """
    finite = np.isfinite(data)
    if finite.all():
        return None
    n_inf = int(np.isinf(data).sum())
    if n_inf:
        return f"{n_inf} infinite values (first in frame " \
               f"{int(np.argwhere(np.isinf(data))[0, 3]) + 1})"
    n_bad = (~finite).sum(axis=3)
    n_frames = data.shape[3]
    partial = (n_bad > 0) & (n_bad < n_frames)
    if partial.any():
        bad_frames = np.flatnonzero((~finite)[partial].any(axis=0)) + 1
        return (f"{int(partial.sum())} voxels are NaN in some frames only "
                f"(frames {', '.join(map(str, bad_frames[:5]))}"
                f"{' ...' if bad_frames.size > 5 else ''})")
    all_nan = n_bad == n_frames
    if all_nan.all():
        return "every voxel is NaN"
    from scipy import ndimage

    labels, _ = ndimage.label(all_nan)
    edge = np.unique(np.concatenate([
        labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()]))
    holes = all_nan & ~np.isin(labels, edge)
    if not holes.any():
        return None
    hits = _mni_brain_hits(np.argwhere(holes).astype(float), affine)
    if hits:
        return (f"{hits} voxels inside the MNI brain mask are NaN in every frame (holes "
                "not connected to the edge of the field of view)")
    return None


def _scaled_float32(proxy, raw: np.ndarray | None = None) -> np.ndarray:
    """An image proxy's values ``raw * slope + inter`` as float32, as nibabel's
    ``get_scaled(np.float32)`` gives them for integer data (computed in float64, rounded once:
    the same numbers), a frame at a time: nibabel's own path makes two float64 copies of the
    whole image (0.2-0.7 s for a 2 mm scan). ``raw``: the stored values, when already at hand
    (:func:`decode_nifti`); unscaled native float32 values are then returned as they are
    (a read-only view: the caller copies it)."""
    slope, inter = np.asarray(proxy.slope), np.asarray(proxy.inter)
    if raw is not None and raw.dtype == np.float32 and slope.size == 1 and inter.size == 1 \
            and float(slope) == 1.0 and float(inter) == 0.0:
        return raw
    raw = proxy.get_unscaled() if raw is None else raw
    if raw.dtype.kind not in "iu" or raw.ndim != 4 or slope.size != 1 or inter.size != 1 \
            or slope.dtype != np.float64 or inter.dtype != np.float64:  # else as nibabel does
        return np.asarray(proxy, dtype=np.float32)
    slope, inter = float(slope), float(inter)
    out = np.empty(raw.shape, np.float32, order="F")
    work = np.empty(raw.shape[:3], np.float64, order="F")
    for f in range(raw.shape[3]):
        np.multiply(raw[..., f], slope, out=work)
        work += inter
        out[..., f] = work
    return out


def read_nifti(path: str | PathLike, mmap: bool):
    """The NIfTI image at ``path`` (:func:`decode_nifti` without the stored values).

    Parameters
    ----------
    path
        A ``.nii`` or ``.nii.gz`` file; a ``.nii.gz`` is decompressed by one zlib call per
        gzip member.
    mmap
        Memory-map an uncompressed ``.nii`` instead of reading it.

    Returns
    -------
    nibabel.Nifti1Image
        The image, its data not yet scaled.
    """
    return decode_nifti(path, mmap)[0]


def decode_nifti(path: str | PathLike, mmap: bool):
    """The NIfTI image at ``path`` and, for a single-file ``.nii.gz``, its stored values as
    a read-only array viewing the decompressed bytes (else None); a ``.nii.gz`` is
    decompressed by one zlib call per gzip member. The view saves the copy nibabel makes
    when it reads the data back from the bytes (0.1-0.2 s for a 2 mm scan).

    nibabel's gzip reader inflates 8 KB steps and takes the GIL back after each; where
    jobs run as threads of one process (the workflow's default profile) and another thread
    runs Python, every step waits for it, and reading one 2 mm scan took 2-4x longer. One
    call releases the GIL for the whole image (benchmarks/README.md, bench_workflow.py).

    Parameters
    ----------
    path : str or path-like
        A ``.nii`` or ``.nii.gz`` image.
    mmap : bool
        Memory-map an uncompressed ``.nii`` (nibabel's ``mmap``).
    """
    import nibabel as nib

    if not str(path).endswith(".gz"):
        return nib.load(str(path), mmap=mmap), None
    raw = Path(path).read_bytes()
    parts = []
    while raw:
        member = zlib.decompressobj(wbits=31)  # gzip framing
        parts.append(member.decompress(raw))
        if not member.eof:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        raw = member.unused_data
    data = b"".join(parts)
    kinds = {348: nib.Nifti1Image, 540: nib.Nifti2Image}
    size = int.from_bytes(data[:4], "little") if len(data) >= 4 else 0
    kind = kinds.get(size) or kinds.get(int.from_bytes(data[:4], "big"))
    if kind is None:  # not a single-file NIfTI: let nibabel find out what it is
        return nib.load(str(path), mmap=mmap), None
    img = kind.from_bytes(data)
    proxy = img.dataobj  # where nibabel reads the values: offset, dtype, shape, order
    count = int(np.prod(proxy.shape))
    end = int(proxy.offset) + count * proxy.dtype.itemsize
    if len(data) < end:
        raise EOFError(f"the image data end after {len(data)} of {end} bytes")
    raw = np.frombuffer(data, dtype=proxy.dtype, count=count, offset=int(proxy.offset))
    return img, raw.reshape(proxy.shape, order=proxy.order)


def load_pet(scan_or_path: Scan | str | PathLike, *, mmap: bool = True,
             check_values: bool = True) -> PetImage:
    """Load a scan's 4D image as float32 Bq/mL, decay-corrected to injection time.

    Parameters
    ----------
    scan_or_path : Scan or path-like
        A scan from :func:`pipeline.bids.discover_scans`, or a ``*_pet.nii[.gz]`` path
        (its sidecar is then found by :func:`pipeline.bids.read_scan`).
    mmap : bool, default=True
        Memory-map uncompressed files while reading (nibabel's ``mmap``); the returned
        array is always a private copy, so the file is never modified.
    check_values : bool, default=True
        Check for NaN/Inf inside the brain (module docstring).

    Returns
    -------
    PetImage
        With ``notes`` saying which conversions were made.

    Raises
    ------
    InputError
        If the image is not 4D, its frame count differs from the sidecar, it needs more
        memory than is available, the file is truncated or corrupt, or it holds NaN/Inf
        inside the brain.
    """

    scan = scan_or_path if isinstance(scan_or_path, Scan) else read_scan(scan_or_path)
    check_memory(scan.shape, scan.image_path)
    try:
        img, raw = decode_nifti(scan.image_path, mmap)
    except (EOFError, zlib.error, OSError, ValueError, TypeError) as err:
        raise _unreadable(scan.image_path, err) from err
    return pet_from_decoded(scan, img, raw, check_values=check_values)


def _unreadable(path: str | PathLike, err: BaseException) -> InputError:
    return InputError(format_problem(
        path, f"the image data cannot be read; the file is truncated or corrupt "
        f"({type(err).__name__}: {err})",
        "Copy or export the image again and check its size (gzip -t tests .nii.gz files)."))


def pet_from_decoded(scan: Scan, img, raw: np.ndarray | None, *,
                     check_values: bool = True) -> PetImage:
    """:func:`load_pet` of a scan whose file is already decoded (the same values, notes and
    checks): for a step that read the file for another purpose (the first parse's space
    detection, :mod:`pipeline.preprocess.plan`), so the file is not decompressed again.

    Parameters
    ----------
    scan : Scan
        The scan (its sidecar facts: frames, units, decay correction).
    img : nibabel image
        Its image file as :func:`decode_nifti` returned it.
    raw : ndarray or None
        The stored values :func:`decode_nifti` returned with it (never modified).
    check_values : bool, default=True
        As :func:`load_pet`.

    Returns
    -------
    PetImage

    Raises
    ------
    InputError
        As :func:`load_pet`.
    """
    path = scan.image_path
    try:
        proxy = img.dataobj
        data = _scaled_float32(proxy, raw) if hasattr(proxy, "get_unscaled") \
            else np.asarray(proxy, dtype=np.float32)
        if data.dtype != np.float32:  # (np.asarray with a dtype may copy even when equal)
            data = data.astype(np.float32)
        # a .nii.gz is read into a private bytearray: only a view of the file (memory
        # map) or of a cached array must be copied, never to write through to them
        private = data.flags.owndata or isinstance(data.base, bytearray)
        if not (private and data.flags.writeable) or isinstance(data, np.memmap):
            data = data.copy(order="K")  # keep NIfTI's (Fortran) order: no transposition
    except (EOFError, zlib.error, OSError, ValueError, TypeError) as err:
        raise _unreadable(path, err) from err
    if data.ndim != 4 or data.shape[3] != scan.frames.n_frames:
        raise InputError(format_problem(
            path, f"image shape {data.shape} does not match {scan.frames.n_frames} frames",
            "Give the 4D image with one volume per sidecar frame."))
    notes: list[str] = []
    if scan.bq_scale != 1.0:
        data *= np.float32(scan.bq_scale)
        notes.append(f"converted from {scan.units} to Bq/mL (x {scan.bq_scale:g})")
    if not scan.decay_corrected:
        data *= decay_correction_factors(scan.frames, scan.half_life).astype(np.float32)
        notes.append(f"decay-corrected on load to injection time with {scan.radionuclide} "
                     f"half-life {scan.half_life:g} min")
    elif scan.decay_correction_time != 0.0 and scan.half_life is None:
        notes.append(f"decay-corrected to {scan.decay_correction_time:g} min, not to injection; "
                     "radionuclide unknown, so left as is (a constant factor: BP_ND unaffected)")
    elif scan.decay_correction_time != 0.0:
        factor = math.exp(math.log(2.0) * scan.decay_correction_time / scan.half_life)
        data *= np.float32(factor)
        notes.append(f"decay correction moved from {scan.decay_correction_time:g} min to "
                     f"injection (x {factor:.6g}, {scan.radionuclide})")
    if check_values:
        problem = nonfinite_problem(data, img.affine)
        if problem:
            raise InputError(format_problem(
                path, f"NaN or infinite values inside the brain: {problem}",
                "Fix the reconstruction or preprocessing that produced them; set voxels "
                "outside the field of view to 0 or NaN in every frame."))
        # every frame has finite voxels here (all-NaN voxels and frames were caught above)
        nonzero = (np.nanmax(data, axis=(0, 1, 2)) != 0) | (np.nanmin(data, axis=(0, 1, 2)) != 0)
        if not nonzero.any():
            raise InputError(format_problem(
                path, "the image is zero (or NaN) in every voxel of every frame",
                "Export the image again; it holds no activity."))
        empty = np.flatnonzero(~nonzero) + 1
        if empty.size:
            notes.append(f"warning: frame(s) {', '.join(map(str, empty))} are zero everywhere "
                         "(missing data?)")
    return PetImage(data=data, frames=scan.frames, affine=np.asarray(img.affine, float),
                    scan=scan, notes=notes)
