"""Fixtures for region tests: a coarse 8 mm MNI grid with block-shaped user atlases.

An 8 mm grid keeps arrays tiny (23 x 28 x 23 voxels) while still covering the MNI brain,
so the field-of-view check passes. Atlases are written on the same grid, so resampling is
the identity and every expected value can be computed by hand.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHAPE8 = (23, 28, 23)

#: Blocks of the label atlas, as index slices on the 8 mm grid (27 voxels each).
BLOCKS = {
    1: (slice(5, 8), slice(10, 13), slice(8, 11)),     # x = 50..34 mm: right hemisphere
    2: (slice(14, 17), slice(10, 13), slice(8, 11)),   # x = -22..-38 mm: left hemisphere
    3: (slice(10, 13), slice(15, 18), slice(12, 15)),  # x = 10..-6 mm: across the midline
}


def affine8() -> np.ndarray:
    """Voxel -> MNI mm of the 8 mm grid: (i, j, k) -> (90 - 8i, -126 + 8j, -72 + 8k)."""
    affine = np.diag([-8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [90.0, -126.0, -72.0]
    return affine


@pytest.fixture
def grid8() -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the 8 mm grid."""
    return SHAPE8, affine8()


@pytest.fixture
def label_atlas(tmp_path: Path) -> Path:
    """A label atlas (blocks 1, 2, 3) and its table ``labels.tsv`` in ``tmp_path``."""
    data = np.zeros(SHAPE8, np.int16)
    for label, block in BLOCKS.items():
        data[block] = label
    nib.Nifti1Image(data, affine8()).to_filename(tmp_path / "labels.nii.gz")
    (tmp_path / "labels.tsv").write_text("1\tright_block\n2\tleft_block\n3\tmid_block\n")
    return tmp_path / "labels.nii.gz"


def _write_config(folder: Path, body: str, name: str = "regions.yaml") -> Path:
    """Write a region config with the block atlas declared as ``blocks``."""
    head = textwrap.dedent("""\
        name: test
        atlas: blocks
        min_reference_voxels: 1
        atlases:
          blocks: {image: labels.nii.gz, labels: labels.tsv, kind: labels}
        """)
    path = folder / name
    path.write_text(head + textwrap.dedent(body))
    return path


@pytest.fixture
def write_config():
    """``write_config(folder, body, name="regions.yaml")``: a config using the block atlas."""
    return _write_config


@pytest.fixture
def blocks() -> dict[int, tuple[slice, slice, slice]]:
    """Index slices of the label atlas's blocks on the 8 mm grid."""
    return BLOCKS
