"""A 4D PET image and its JSON sidecar, named as BIDS or not (private).

``petbp map`` takes any 4D NIfTI whose sidecar has the same stem (``pet.nii.gz`` +
``pet.json``) or is given with ``--sidecar``; a BIDS ``*_pet.nii[.gz]`` without
``--sidecar`` keeps BIDS inheritance of sidecars from higher folders. The sidecar is read
by :func:`pipeline.bids.read_scan` (the same checks as the workflow's), through links
with BIDS names in a temporary folder; messages name the user's files.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from pipeline.errors import InputError, PetbpError, format_problem

__all__ = ["read_pet_scan", "sidecar_of"]

_IMAGE_EXTENSIONS = (".nii.gz", ".nii")


def _stem(path: Path) -> tuple[str, str]:
    for ext in _IMAGE_EXTENSIONS:
        if path.name.endswith(ext):
            return path.name[: -len(ext)], ext
    raise InputError(format_problem(path, "not a NIfTI image (.nii or .nii.gz)",
                                    "Give the 4D PET image as .nii.gz or .nii."))


def sidecar_of(image_path: str | os.PathLike) -> Path:
    """The JSON sidecar with the image's stem: ``x/pet.nii.gz`` -> ``x/pet.json``."""
    path = Path(image_path)
    stem, _ = _stem(path)
    return path.with_name(f"{stem}.json")


def _is_bids_name(path: Path) -> bool:
    return path.name.startswith("sub-") and path.name.endswith(("_pet.nii.gz", "_pet.nii"))


def read_pet_scan(image_path: str | os.PathLike, sidecar: str | os.PathLike | None = None):
    """Read a PET image's header and sidecar as a :class:`pipeline.bids.Scan`.

    Parameters
    ----------
    image_path : path
        A 4D NIfTI (``.nii.gz`` or ``.nii``), any name.
    sidecar : path, default=None
        Its JSON sidecar; None takes the file with the image's stem (``pet.json`` for
        ``pet.nii.gz``), or BIDS inheritance for a BIDS ``*_pet.nii[.gz]`` name.

    Returns
    -------
    Scan
        ``image_path`` and ``sidecar_path`` are the given files.

    Raises
    ------
    InputError
        Naming the image or sidecar, if either is missing or unusable.
    """
    from pipeline.bids import Scan, read_scan

    if isinstance(image_path, Scan) and sidecar is None:
        return image_path  # already read (the workflow passes its scans, e.g. PETPrep images)
    image = Path(image_path)
    _, ext = _stem(image)
    if not image.is_file():
        raise InputError(format_problem(image, "file not found", "Check the path."))
    if sidecar is None and _is_bids_name(image):
        return read_scan(image)
    side = Path(sidecar) if sidecar is not None else sidecar_of(image)
    if not side.is_file():
        fix = ("Check the --sidecar path." if sidecar is not None else
               f"Put the BIDS sidecar (frame timing, Units, ImageDecayCorrected) at {side}, "
               "or give it with --sidecar FILE.")
        raise InputError(format_problem(side, "JSON sidecar not found", fix))
    with tempfile.TemporaryDirectory(prefix="petbp-map-") as tmp:
        link_image = Path(tmp) / f"sub-x_pet{ext}"
        link_side = Path(tmp) / "sub-x_pet.json"
        link_image.symlink_to(image.resolve())
        link_side.symlink_to(side.resolve())
        try:
            scan = read_scan(link_image, bids_root=tmp)
        except PetbpError as err:
            text = str(err)
            for link, real in ((link_image, image), (link_side, side)):
                text = text.replace(str(link), str(real)).replace(link.name, real.name)
            raise type(err)(text) from None
    frames = dataclasses.replace(scan.frames, source=str(side))
    return dataclasses.replace(scan, image_path=image, sidecar_path=side, frames=frames)
