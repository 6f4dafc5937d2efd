"""A loaded scan kept on disk as float32 so later steps memory-map it instead of reading again.

Decompressing a 4D ``.nii.gz`` is most of what a per-scan step costs (0.5 s for a 2 mm,
28-frame image; memory-mapping the same data uncompressed takes milliseconds), and a scan
is read by several steps: its TACs, one map per condition window, the region figure. The
first step that loads a scan (:func:`load_cached_pet` with a cache folder) writes what
:func:`pipeline.bids.load_pet` returned (Bq/mL, decay-corrected, checked) as
``<key>.npy`` plus ``<key>.json`` (the load notes); later steps get a read-only memory map
of it.

The key is a hash of everything the loaded values depend on: the image file (resolved path,
size, modification time), the sidecar facts :func:`load_pet` uses (frames, units scale,
decay correction, half-life) and petbp's version. A changed image or sidecar gets a new
key, so a stale copy is never read; an absent or unreadable copy only means the image is
read again. A new study's first workflow parse decodes every image to detect its space
(:mod:`pipeline.preprocess.plan`); it stores each scan analysed as is here
(:func:`store_decoded`), so the TAC step reads the copy and the file is decompressed once
per run. The copy is a cache, not a result: deleting the folder is always safe (the
workflow deletes it when a run succeeds, bounding its disk use to one run's scans: 101 MB
per 2 mm, 28-frame scan).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.bids.images import PetImage, check_memory, load_pet, pet_from_decoded
from pipeline.bids.scan import Scan
from pipeline.errors import InputError

__all__ = ["cache_key", "load_cached_pet", "store_decoded"]

#: Bumped when the stored layout changes.
_FORMAT = 1


def cache_key(scan: Scan) -> str:
    """The cache file name (without extension) of a scan's loaded image.

    Parameters
    ----------
    scan : Scan
        The scan (its image file must exist).
    """
    from pipeline import __version__

    image = Path(scan.image_path).resolve()
    stat = image.stat()
    facts = {
        "format": _FORMAT, "version": __version__, "image": str(image), "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns, "start": [float(v) for v in scan.frames.start],
        "end": [float(v) for v in scan.frames.end], "bq_scale": float(scan.bq_scale),
        "decay_corrected": bool(scan.decay_corrected),
        "decay_correction_time": float(scan.decay_correction_time),
        "half_life": None if scan.half_life is None else float(scan.half_life),
        "radionuclide": scan.radionuclide}
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]
    return f"{image.name.split('.')[0]}-{digest}"


def _read(folder: Path, key: str, scan: Scan) -> PetImage | None:
    data_path, notes_path = folder / f"{key}.npy", folder / f"{key}.json"
    if not (data_path.is_file() and notes_path.is_file()):
        return None
    try:
        facts = json.loads(notes_path.read_text())
        notes, affine = facts["notes"], np.asarray(facts["affine"], float)
        data = np.asarray(np.load(data_path, mmap_mode="r"))  # a plain array over the map
    except (OSError, ValueError, KeyError):
        return None  # unreadable (e.g. a crash mid-write elsewhere): read the image again
    if data.shape != (*scan.shape[:3], scan.frames.n_frames):
        return None
    return PetImage(data=data, frames=scan.frames, affine=affine, scan=scan, notes=list(notes))


def _write(folder: Path, key: str, image: PetImage) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # notes first, data last: a copy is complete when its .npy exists (both renamed in place)
    facts = json.dumps({"notes": image.notes, "affine": np.asarray(image.affine).tolist()})
    for suffix, save in ((".json", lambda f: f.write(facts.encode())),
                         (".npy", lambda f: np.save(f, image.data, allow_pickle=False))):
        handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{key}", suffix=suffix,
                                             delete=False)
        try:
            with handle:
                save(handle)
            os.replace(handle.name, folder / f"{key}{suffix}")
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise


def load_cached_pet(scan: Scan, cache_dir: str | os.PathLike | None) -> PetImage:
    """A scan's image as :func:`pipeline.bids.load_pet` gives it, read at most once per cache.

    Parameters
    ----------
    scan : Scan
        The scan to load.
    cache_dir : str, path-like or None
        Folder of loaded images (module docstring); None loads without a cache.

    Returns
    -------
    PetImage
        From the cache: ``data`` is a read-only memory map (float32, Bq/mL). Otherwise the
        loaded image (a private, writable array), which is then stored in the cache.

    Raises
    ------
    InputError
        As :func:`pipeline.bids.load_pet`, when the image has to be read.
    """
    if cache_dir is None:
        return load_pet(scan)
    folder, key = Path(cache_dir), cache_key(scan)
    cached = _read(folder, key, scan)
    if cached is not None:
        return cached
    image = load_pet(scan)
    try:
        _write(folder, key, image)
    except OSError:
        pass  # a full disk only costs the next step a second read
    return image


def store_decoded(scan: Scan, cache_dir: str | os.PathLike, img, raw: np.ndarray | None) -> bool:
    """Store a scan in the cache from its file already decoded for another purpose.

    The stored values, notes and checks are :func:`load_cached_pet`'s
    (:func:`pipeline.bids.images.pet_from_decoded`); a copy already in the cache is kept.

    Parameters
    ----------
    scan : Scan
        The scan.
    cache_dir : str or path-like
        Folder of loaded images (module docstring).
    img, raw
        The decoded file (:func:`pipeline.bids.images.decode_nifti`), not modified.

    Returns
    -------
    bool
        Whether the cache now holds the scan. False when ``load_pet`` would refuse the image
        (its step then reads it and reports why) or the copy cannot be written (a full disk:
        that step reads the image itself).
    """
    folder, key = Path(cache_dir), cache_key(scan)
    if (folder / f"{key}.npy").is_file():
        return True
    try:
        check_memory(scan.shape, scan.image_path)
        _write(folder, key, pet_from_decoded(scan, img, raw))
    except (InputError, OSError, MemoryError):
        return False
    return True
