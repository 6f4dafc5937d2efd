"""Motion confounds table, FD thresholds and scan exclusion, with reasons."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.frames import Frames
from pipeline.preprocess.confounds import (
    MotionThresholds,
    motion_confounds,
    motion_decision,
    read_motion,
    write_motion_confounds,
)
from pipeline.preprocess.motion import MotionEstimate
from pipeline.preprocess.rigid import matrix_from_params


def _estimate(params: np.ndarray) -> MotionEstimate:
    centre = np.array([0.0, -18.0, 18.0])
    return MotionEstimate(frame_from_reference=matrix_from_params(params, centre),
                          params=params, centre=centre, blocks=[[k] for k in range(len(params))],
                          reference=np.zeros((2, 2, 2)), reference_frames=[2, 3])


def test_confounds_columns_and_displacement():
    """Columns in BIDS/fMRIPrep names; displacement = |t| + 50 mm x rotation angle."""
    params = np.array([[0, 0, 0, 0, 0, 0], [3.0, 4.0, 0, 0, 0, 0.01]])
    table = motion_confounds(_estimate(params))
    assert list(table.columns) == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                                   "framewise_displacement", "displacement"]
    np.testing.assert_allclose(table["framewise_displacement"], [0.0, 7.0 + 0.5])
    np.testing.assert_allclose(table["displacement"], [0.0, 5.0 + 0.5], atol=1e-9)


def test_outlier_frames_and_scan_exclusion_have_reasons(caplog):
    """FD above the threshold marks the frame; too many outliers exclude the scan; logged."""
    params = np.zeros((4, 6))
    params[1, 0] = 2.5                                   # FD 2.5 (in), then 2.5 (back)
    table = motion_confounds(_estimate(params))
    decision = motion_decision(table, MotionThresholds(fd_mm=2.0, max_outlier_fraction=0.25),
                               scan="s")
    assert decision.outliers.tolist() == [False, True, True, False]
    assert decision.scan_excluded
    assert any("frame 1 excluded: framewise displacement 2.50 mm > 2 mm" in r
               for r in decision.reasons)
    assert any("50% of frames are motion outliers" in r for r in decision.reasons)
    assert "scan excluded" in caplog.text
    kept = motion_decision(table, MotionThresholds(fd_mm=3.0), scan="s")
    assert not kept.outliers.any() and not kept.scan_excluded and kept.reasons == []


def test_large_displacement_excludes_the_scan():
    """A frame 12 mm from the reference excludes the scan at the 10 mm default."""
    params = np.zeros((3, 6))
    params[2, 2] = 12.0
    decision = motion_decision(motion_confounds(_estimate(params)),
                               MotionThresholds(fd_mm=20.0))
    assert decision.scan_excluded
    assert "displaced 12.0 mm from the reference (> 10 mm)" in decision.reasons[0]


@pytest.mark.parametrize("kwargs", [{"fd_mm": 0}, {"fd_mm": float("nan")},
                                    {"max_displacement_mm": -1},
                                    {"max_outlier_fraction": 1.5}])
def test_bad_thresholds_are_config_errors(kwargs):
    """Non-positive or out-of-range thresholds are refused, naming the key."""
    with pytest.raises(ConfigError, match=r"config, motion\.(fd_mm|max_displacement_mm|max_outl)"):
        MotionThresholds(**kwargs)


def test_write_and_read_round_trip(tmp_path):
    """The TSV + JSON hold the table, the transforms (RAS) and the decision."""
    params = np.array([[0, 0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0.002, 0]])
    frames = Frames.from_bids([0, 60], [60, 60])
    out = tmp_path / "sub-01_task-x_desc-confounds_timeseries.tsv"
    decision = write_motion_confounds(_estimate(params), frames, out, source="x_pet.nii.gz")
    table, matrices, meta = read_motion(out)
    assert not decision.scan_excluded
    np.testing.assert_allclose(table["trans_x"], [0.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(matrices, _estimate(params).frame_from_reference, atol=1e-7)
    assert meta["Columns"]["rot_y"]["Units"] == "rad"
    assert meta["FrameDuration"] == [60.0, 60.0]
    assert table["motion_outlier"].tolist() == [0, 0]
