"""The bridge to ANTs (``antspyx``): import with a clear error, arrays <-> ANTs images,
rigid/affine transform files <-> RAS matrices, thread count.

antspyx is an optional dependency (``pip install 'petbp[preproc]'``): only scanner-space
studies need it, and its wheel is large (~100 MB). Only this module and the registration
steps import it; mask building, TAC extraction and map warping after registration are numpy.

ITK and ANTs work in LPS world coordinates; everything petbp stores is RAS (nibabel). The
conversion happens here and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from os import PathLike
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, format_problem
from pipeline.preprocess.rigid import ANTS_LPS, lps_to_ras

__all__ = [
    "INSTALL_HINT",
    "ants_threads",
    "from_ants",
    "matrix_from_ants_transform",
    "require_ants",
    "to_ants",
    "write_ants_matrix",
]

INSTALL_HINT = ("Install the preprocessing extra: pip install 'petbp[preproc]' (or pip "
                "install antspyx), or give images already normalized to MNI152 space.")


def require_ants() -> Any:
    """Import ``ants`` (antspyx) or raise a :class:`ConfigError` saying how to install it.

    Returns
    -------
    module
        The ``ants`` module.

    Raises
    ------
    ConfigError
        If antspyx is not installed.
    """
    try:
        import ants
    except ImportError as exc:
        raise ConfigError(format_problem(
            "preprocessing", f"scanner-space PET needs ANTs (the Python package antspyx), "
            f"which is not installed ({exc})", INSTALL_HINT)) from None
    return ants


@contextlib.contextmanager
def ants_threads(threads: int) -> Iterator[None]:
    """Run ANTs with ``threads`` ITK threads (restores the previous setting)."""
    key = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
    old = os.environ.get(key)
    os.environ[key] = str(max(1, int(threads)))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def to_ants(data: np.ndarray, affine: np.ndarray) -> Any:
    """An ANTs image from a 3D array and its voxel -> RAS mm affine (no shear)."""
    ants = require_ants()
    lps = ANTS_LPS @ np.asarray(affine, float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32),
                           origin=tuple(float(v) for v in lps[:3, 3]),
                           spacing=tuple(float(v) for v in spacing),
                           direction=direction)


def from_ants(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """The array and voxel -> RAS mm affine of an ANTs image."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.direction, float) * np.asarray(image.spacing, float)
    lps[:3, 3] = np.asarray(image.origin, float)
    return np.asarray(image.numpy(), np.float32), ANTS_LPS @ lps


def matrix_from_ants_transform(transform: str | PathLike | Any) -> np.ndarray:
    """The RAS 4x4 point mapping of an ANTs linear transform (file or ``ANTsTransform``).

    ITK's ``MatrixOffsetTransformBase`` maps ``x -> A (x - c) + c + t`` in LPS, with ``A``
    and ``t`` the parameters and ``c`` the fixed parameters.
    """
    ants = require_ants()
    tx = ants.read_transform(str(transform)) if isinstance(transform, str | PathLike) \
        else transform
    params = np.asarray(tx.parameters, float)
    centre = np.asarray(tx.fixed_parameters, float)[:3]
    a = params[:9].reshape(3, 3)
    t = params[9:12]
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = t + centre - a @ centre
    return lps_to_ras(lps)


def write_ants_matrix(matrix: np.ndarray, path: str | PathLike) -> str:
    """Write a RAS 4x4 point mapping as an ANTs/ITK affine transform file (``.mat``)."""
    ants = require_ants()
    lps = lps_to_ras(matrix)
    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                    matrix=lps[:3, :3], offset=lps[:3, 3])
    ants.write_transform(tx, str(path))
    return str(path)
