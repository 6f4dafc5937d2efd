"""Rigid-transform helpers: parameters <-> matrices, FD, LPS <-> RAS."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.preprocess.rigid import (
    framewise_displacement,
    invert,
    lps_to_ras,
    matrix_from_params,
    params_from_matrix,
    point_displacement_rms,
    rotation_angle,
)


def test_params_round_trip(rng):
    """Six parameters about a centre survive matrix and back (rotations < 90 deg)."""
    params = np.column_stack([rng.uniform(-5, 5, (20, 3)), rng.uniform(-0.5, 0.5, (20, 3))])
    centre = np.array([3.0, -18.0, 20.0])
    back = params_from_matrix(matrix_from_params(params, centre), centre)
    np.testing.assert_allclose(back, params, atol=1e-10)


def test_rotation_about_centre_keeps_centre_fixed():
    """A pure rotation about c leaves c where it is and moves a point 50 mm away by the arc."""
    centre = np.array([10.0, 20.0, 30.0])
    m = matrix_from_params([0, 0, 0, 0, 0, 0.02], centre)
    np.testing.assert_allclose(m @ np.append(centre, 1), np.append(centre, 1), atol=1e-12)
    point = centre + np.array([50.0, 0.0, 0.0])
    moved = m @ np.append(point, 1)
    assert np.linalg.norm(moved[:3] - point) == pytest.approx(
        2 * 50 * np.sin(0.01), rel=1e-9)
    assert rotation_angle(m) == pytest.approx(0.02, rel=1e-9)


def test_framewise_displacement_power():
    """FD = sum |d trans| + 50 sum |d rot| (Power et al. 2012), 0 for the first frame."""
    params = np.array([[0, 0, 0, 0, 0, 0], [1.0, -0.5, 0, 0.01, 0, -0.02],
                       [1.0, -0.5, 0, 0.01, 0, -0.02]])
    np.testing.assert_allclose(framewise_displacement(params), [0.0, 1.5 + 50 * 0.03, 0.0])


def test_lps_ras_is_an_involution_and_flips_x_y():
    """Converting twice is the identity; a RAS x-translation is an LPS -x translation."""
    m = matrix_from_params([2.0, 3.0, 4.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(lps_to_ras(lps_to_ras(m)), m)
    np.testing.assert_allclose(lps_to_ras(matrix_from_params([2.0, 3.0, 4.0, 0, 0, 0]))[:3, 3],
                               [-2.0, -3.0, 4.0])


def test_point_displacement_rms_of_translation():
    """Two transforms differing by a 3-4-0 translation put every point 5 mm apart."""
    points = np.random.default_rng(0).normal(size=(100, 3)) * 50
    a = matrix_from_params([3.0, 4.0, 0, 0, 0, 0])
    np.testing.assert_allclose(point_displacement_rms(a, np.eye(4), points), [5.0])
    np.testing.assert_allclose(invert(a) @ a, np.eye(4), atol=1e-12)
