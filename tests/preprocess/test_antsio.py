"""The ANTs bridge: install hint, images and transforms in RAS."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.preprocess import antsio
from pipeline.preprocess.rigid import matrix_from_params


def test_missing_antspyx_says_how_to_install(monkeypatch):
    """Without antspyx the error names the extra to install."""
    monkeypatch.setitem(sys.modules, "ants", None)
    with pytest.raises(ConfigError, match=r"pip install 'petbp\[preproc\]'"):
        antsio.require_ants()


def test_image_round_trip_keeps_data_and_affine():
    """A LAS (MNI-style) affine survives the RAS -> LPS -> RAS trip."""
    pytest.importorskip("ants")
    affine = np.diag([-2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [90.0, -126.0, -72.0]
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    back, back_affine = antsio.from_ants(antsio.to_ants(data, affine))
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_affine, affine)


def test_transform_file_round_trip(tmp_path):
    """A RAS rigid matrix written as an ITK file reads back the same."""
    pytest.importorskip("ants")
    matrix = matrix_from_params([1.0, -2.0, 3.0, 0.05, -0.02, 0.1], [10.0, 0.0, 5.0])
    path = antsio.write_ants_matrix(matrix, tmp_path / "x.mat")
    np.testing.assert_allclose(antsio.matrix_from_ants_transform(path), matrix, atol=1e-6)
