"""NIfTI headers of PET images: shape and affine, read without the image data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = ["image_header"]


def image_header(image_path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and voxel-to-mm affine from the NIfTI header (no data read).

    Parameters
    ----------
    image_path : Path
        A NIfTI-1 or NIfTI-2 file, gzipped or not.

    Returns
    -------
    shape : tuple of int
        The image dimensions.
    affine : ndarray of shape (4, 4)
        Voxel indices -> mm.

    Raises
    ------
    InputError
        If the header cannot be read.
    """
    import nibabel as nib

    try:
        img = _nifti1_single(image_path)
        if img is None:
            img = nib.load(str(image_path))
        shape = tuple(int(d) for d in img.header.get_data_shape())
        return shape, np.asarray(img.affine, dtype=float)
    except Exception as err:  # nibabel raises many types for unreadable files
        raise InputError(format_problem(
            image_path, f"cannot read the NIfTI header ({type(err).__name__}: {err})",
            "Check that the file is a complete NIfTI-1/2 image (re-copy or re-export it).")
        ) from err


def _nifti1_single(image_path: Path) -> Any:
    """The image as a single-file NIfTI-1 (what ``nib.load`` gives for such files, without
    trying every image class first), or None for anything else (NIfTI-2, damaged files),
    which is left to ``nib.load`` and its usual messages."""
    import gzip

    import nibabel as nib

    try:
        opener = gzip.open if image_path.name.endswith(".gz") else open
        with opener(image_path, "rb") as stream:
            head = stream.read(348)
    except (OSError, EOFError):
        return None
    size_ok = head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c")  # 348, either byte order
    if len(head) < 348 or not size_ok or head[344:348] != b"n+1\x00":
        return None
    try:
        return nib.Nifti1Image.from_filename(str(image_path))
    except Exception:  # left to nib.load, which gives the usual error
        return None
