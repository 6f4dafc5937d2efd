"""Shared model plumbing: input checks, ModelFit tables, fit quality, the fit() dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.kinetics import fit
from pipeline.kinetics._inputs import prepare_inputs
from pipeline.kinetics.result import join_flags, make_fit
from pipeline.simulate.compartments import srtm_consistent_tacs


@pytest.fixture
def data(frames_90min):
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0, 2.0])
    return frames_90min, ref, tacs


def test_prepare_inputs_window_and_weights(data):
    """Frames outside the window get weight 0; weights average 1 over the window."""
    frames, ref, tacs = data
    prep = prepare_inputs(frames, ref, tacs, window=(20, 60),
                          weights=frames.duration, min_frames=4)
    assert np.array_equal(prep.used, (frames.mid >= 20) & (frames.mid <= 60))
    assert np.all(prep.weights[~prep.used] == 0)
    assert prep.weights[prep.used].mean() == pytest.approx(1.0)


def test_prepare_inputs_flags_bad_tacs_without_raising(data):
    """A target with NaN in a fitted frame is marked bad; the call does not raise."""
    frames, ref, tacs = data
    tacs[3, 1] = np.nan
    prep = prepare_inputs(frames, ref, tacs)
    assert prep.nan_tacs.tolist() == [False, True]


def test_prepare_inputs_one_dimensional_target(data):
    """A single TAC may be 1-D; it becomes one column."""
    frames, ref, tacs = data
    prep = prepare_inputs(frames, ref, tacs[:, 0])
    assert prep.tacs.shape == (28, 1) and prep.was_1d


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"t_star": 95.0}, r"t\* = 95 min is at or past the last frame"),
    ({"window": (60, 20)}, "window end 20 min is not after its start 60 min"),
    ({"window": (80, 90)}, r"only 1 frame\(s\) to fit"),
])
def test_prepare_inputs_rejects_bad_options(data, kwargs, message):
    """t* past the scan, reversed or too short windows are refused with the reason."""
    frames, ref, tacs = data
    with pytest.raises(InputError, match=message):
        prepare_inputs(frames, ref, tacs, min_frames=3, **kwargs)


def test_prepare_inputs_rejects_shape_mismatch(data):
    """Targets with the wrong number of rows are refused."""
    frames, ref, tacs = data
    with pytest.raises(InputError, match=r"target TACs have shape \(27, 2\)"):
        prepare_inputs(frames, ref, tacs[:-1])


def test_model_fit_to_frame_columns(data):
    """to_frame has the fit table's columns (FIT_COLUMNS) with fit quality, one row per region."""
    frames, ref, tacs = data
    table = fit("srtm", frames, ref, tacs).to_frame(["putamen", "thalamus"])
    for column in ("region", "model", "bp_nd", "r1", "k2", "k2prime", "se_bp_nd",
                   "n_frames", "rmse", "nrmse", "flags"):
        assert column in table.columns
    assert table["region"].tolist() == ["putamen", "thalamus"]
    assert table["bp_nd"].to_numpy() == pytest.approx([1.0, 2.0], rel=1e-3)


def test_fit_quality_measures_residuals(data):
    """rmse is the RMS residual over fitted frames; nrmse divides by the mean level."""
    frames, ref, tacs = data
    prep = prepare_inputs(frames, ref, tacs)
    quality = make_fit("test", prep, bp_nd=[1.0, 2.0], fitted=tacs + 2.0).extra
    assert quality["rmse"] == pytest.approx([2.0, 2.0])
    assert quality["nrmse"] == pytest.approx(2.0 / np.abs(tacs).mean(axis=0))


def test_join_flags_joins_names():
    """Flags of several conditions join with ';'; clean TACs get ''."""
    flags = join_flags(3, [("at_bound", np.array([True, False, True])),
                           ("not_converged", np.array([False, False, True]))])
    assert flags.tolist() == ["at_bound", "", "at_bound;not_converged"]


def test_fit_records_weight_scheme(data):
    """fit() turns a scheme name into weights and records the name."""
    frames, ref, tacs = data
    result = fit("srtm_bf", frames, ref, tacs, weights="duration")
    assert result.options["weights"] == "duration"
    assert result.bp_nd == pytest.approx([1.0, 2.0], rel=1e-3)


def test_fit_rejects_unknown_model_and_option(data):
    """Unknown models and options a model does not take are configuration errors."""
    frames, ref, tacs = data
    with pytest.raises(ConfigError, match="unknown model 'srtm3'"):
        fit("srtm3", frames, ref, tacs)
    with pytest.raises(ConfigError, match=r"does not take option.*t_star"):
        fit("srtm", frames, ref, tacs, t_star=10.0)
