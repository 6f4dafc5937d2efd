"""NIfTI headers of PET images: shape and affine, read without the image data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = ["image_header"]


def image_header(image_path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and voxel-to-mm affine from the NIfTI header (no data read).

    A single-file NIfTI-1 (the usual PET image) is read from its first 348 bytes alone, the
    header nibabel would read (with its checks and fixes); anything else (NIfTI-2, pairs,
    damaged files) goes through ``nibabel.load`` and its usual messages.

    Parameters
    ----------
    image_path : Path
        A NIfTI-1 or NIfTI-2 file, gzipped or not.

    Returns
    -------
    shape : tuple of int
        The image dimensions.
    affine : ndarray of shape (4, 4)
        Voxel indices -> mm (the header's best affine: sform, else qform, else the voxel
        sizes).

    Raises
    ------
    InputError
        If the header cannot be read.
    """
    import nibabel as nib

    try:
        header = _nifti1_single_header(image_path)
        if header is None:
            header = nib.load(str(image_path)).header
        shape = tuple(int(d) for d in header.get_data_shape())
        return shape, np.asarray(header.get_best_affine(), dtype=float)
    except Exception as err:  # nibabel raises many types for unreadable files
        raise InputError(format_problem(
            image_path, f"cannot read the NIfTI header ({type(err).__name__}: {err})",
            "Check that the file is a complete NIfTI-1/2 image (re-copy or re-export it).")
        ) from err


def _nifti1_single_header(image_path: Path) -> Any:
    """The header of a single-file NIfTI-1 image, as ``nib.load`` reads it (with its checks),
    or None for anything else, which is left to ``nib.load``."""
    import gzip
    import io

    import nibabel as nib

    try:
        opener = gzip.open if image_path.name.endswith(".gz") else open
        with opener(image_path, "rb") as stream:
            head = stream.read(348)
    except (OSError, EOFError):
        return None
    size_ok = head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c")  # 348, either order
    if len(head) < 348 or not size_ok or head[344:348] != b"n+1\x00":
        return None
    try:
        return nib.Nifti1Header.from_fileobj(io.BytesIO(head))
    except Exception:  # left to nib.load, which gives the usual error
        return None
