"""The model registry and the result contract that every model must meet."""

from __future__ import annotations

import inspect
import warnings

import jsonschema
import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.kinetics import (
    FIT_COLUMNS,
    MODELS,
    SE_KEYS,
    describe_fit,
    fit,
    get_model,
    models_json_schema,
    validate_model_options,
)
from pipeline.kinetics.result import COMMON_OPTIONS
from pipeline.simulate.compartments import srtm_consistent_tacs
from pipeline.tables import TacTable, read_table, write_tacs

BP = [0.8, 2.0]
#: Options that make every model fit SRTM-consistent data with k2' = 0.12/min.
OPTIONS = {"srtm2": {"k2prime": 0.12}, "mrtm2": {"k2prime": 0.12},
           "logan_ref": {"k2prime": 0.12, "t_star": 10.0}, "ratio": {"window": (45.0, 90.0)}}


@pytest.fixture
def data(frames_90min):
    """Two SRTM-consistent targets, then an all-zero, a constant and a NaN target."""
    ref, tacs = srtm_consistent_tacs(frames_90min, BP, k2prime=0.12)
    n = frames_90min.n_frames
    nan = tacs[:, 0].copy()
    nan[-3] = np.nan  # inside every model's fitted frames
    return frames_90min, ref, np.column_stack([tacs, np.zeros(n), np.full(n, 3.0), nan])


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_fills_the_same_result(data, model):
    """Same table columns, SE keys and common option keys; degenerate TACs are flagged
    with NaN estimates, without exceptions or warnings."""
    frames, ref, tacs = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fit(model, frames, ref, tacs, **OPTIONS.get(model, {}))
    table = result.to_frame(["a", "b", "zero", "constant", "nan"])
    assert tuple(table.columns) == FIT_COLUMNS
    assert set(result.se) == set(SE_KEYS)
    assert set(COMMON_OPTIONS) <= set(result.options)
    assert result.flags.tolist()[2:] == ["zero_input", "constant_input", "nan_input"]
    assert np.all(np.isnan(result.bp_nd[2:])) and np.all(np.isnan(result.fitted[:, 2:]))
    assert np.all(np.isfinite(table["rmse"][:2])) and np.all(np.isfinite(table["dvr"][:2]))
    for key in ("r1", "k2"):  # NaN exactly where the model does not estimate it
        assert np.all(np.isfinite(getattr(result, key)[:2])) == (key in MODELS[model].estimates)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_options_round_trip(data, model):
    """fit(model, ..., **result.options) redoes the fit exactly."""
    frames, ref, tacs = data
    result = fit(model, frames, ref, tacs[:, :2], weights="duration",
                 **OPTIONS.get(model, {}))
    again = fit(result.model, frames, ref, tacs[:, :2], **result.options)
    np.testing.assert_array_equal(again.bp_nd, result.bp_nd)
    assert again.options == result.options


@pytest.mark.parametrize("model", list(MODELS))
def test_registry_options_match_the_fit_function(model):
    """Each spec lists exactly the keyword options of its fit function."""
    spec = MODELS[model]
    keywords = [name for name, p in inspect.signature(spec.fit).parameters.items()
                if p.kind is p.KEYWORD_ONLY]
    assert sorted(spec.option_names) == sorted(keywords)
    for option in spec.options:
        default = inspect.signature(spec.fit).parameters[option.name].default
        assert option.default == default or option.name == "weights"


@pytest.mark.parametrize("model", list(MODELS))
def test_registry_min_frames_is_what_the_fit_needs(frames_90min, model):
    """The registry's min_frames (read by ``petbp check``) is the fit's own limit: a window of
    min_frames frames fits, one frame fewer is refused with the model's need in the message.
    Each window runs from the start of its first frame to the end of the scan, so it holds
    exactly the last n frames (a frame is in a window by its mid-time)."""
    from pipeline.errors import InputError

    spec = MODELS[model]
    ref, tacs = srtm_consistent_tacs(frames_90min, BP, k2prime=0.12)
    options = {k: v for k, v in OPTIONS.get(model, {}).items() if k == "k2prime"}
    if spec.takes("t_star"):
        options["t_star"] = 0.0
    starts, end = frames_90min.start, float(frames_90min.end[-1])

    def window_of(n):  # the last n frames
        return (float(starts[len(starts) - n]), end)

    fitted = spec.fit(frames_90min, ref, tacs, window=window_of(spec.min_frames), **options)
    assert np.all(np.isfinite(fitted.bp_nd))
    if spec.min_frames > 1:
        with pytest.raises(InputError, match=f"needs at least {spec.min_frames}"):
            spec.fit(frames_90min, ref, tacs, window=window_of(spec.min_frames - 1), **options)


@pytest.mark.parametrize("model", list(MODELS))
def test_describe_cites_the_method(model):
    """The methods sentence of every model names its citation's year."""
    spec = get_model(model)
    text = describe_fit(model, {**OPTIONS.get(model, {}), "window": [45.0, 90.0]})
    assert spec.citation[-4:] in text


def test_cli_fit_gives_the_same_columns_for_every_model(tmp_path, frames_90min):
    """petbp fit writes the same columns, in the same order, for all seven models."""
    ref, tacs = srtm_consistent_tacs(frames_90min, BP, k2prime=0.12)
    table = pd.DataFrame(tacs, columns=["putamen", "caudate"])
    table.insert(0, "cerebellum", ref)
    path = tmp_path / "tacs.tsv"
    write_tacs(path, TacTable(frames_90min, table))
    columns = set()
    for model in MODELS:
        extra = ["--window", "45", "90"] if model == "ratio" else []
        out = tmp_path / f"{model}_bp.tsv"
        assert main(["fit", str(path), "--reference", "cerebellum", "--model", model, *extra,
                     "-o", str(out)]) == 0
        columns.add(tuple(read_table(out).columns))
    assert len(columns) == 1


@pytest.mark.parametrize(("model", "options", "message"), [
    ("srtm", {"t_star": 10}, r"models\.srtm\.t_star: model 'srtm' does not take option\(s\) "
                             r"t_star\.\n  srtm takes: window, weights, bounds"),
    ("mrtm2", {"tstar": 10}, r"models\.mrtm2\.tstar: .*\n  Did you mean t_star\?"),
    ("mrtm", {"k2prime": 0.1}, r"models\.mrtm\.k2prime: model 'mrtm' does not take"),
    ("srtm2", {"k2prime": "fast"}, r"models\.srtm2\.k2prime: k2prime must be a positive rate"),
    ("srtm_bf", {"n_basis": 5}, r"n_basis must be >= 10; got 5"),
    ("srtm_bf", {"theta_range": [1.0, 0.1]}, r"theta_range must be \[low, high\]"),
    ("logan_ref", {"weights": "counted"}, r"weights must be one of uniform, duration, counts"),
    ("srtm", {"bounds": {"bp": [0, 1]}}, r"bounds has unknown parameter\(s\) bp"),
])
def test_validate_model_options_names_the_key(model, options, message):
    """A wrong option fails by its key path, with what is allowed."""
    with pytest.raises(ConfigError, match=message):
        validate_model_options(model, options, f"models.{model}")


def test_validate_model_options_lists_every_problem_and_accepts_shared():
    """All problems in one error; k2prime: shared only where the workflow allows it."""
    with pytest.raises(ConfigError, match=r"2 problems with the options of logan_ref"):
        validate_model_options("logan_ref", {"t_star": -1, "n_basis": 10})
    validate_model_options("mrtm2", {"k2prime": "shared", "t_star": 10}, allow_shared=True)
    with pytest.raises(ConfigError, match="positive rate"):
        validate_model_options("mrtm2", {"k2prime": "shared"})
    with pytest.raises(ConfigError, match="unknown model 'srtm3'"):
        validate_model_options("srtm3", {})


def test_models_json_schema_agrees_with_validate():
    """The JSON-schema fragment accepts the default config's models and refuses t_star
    for SRTM, like validate_model_options."""
    schema = models_json_schema()
    jsonschema.validate({"logan_ref": {"t_star": 10, "k2prime": "shared"},
                         "mrtm2": {"k2prime": "shared"}, "srtm": None}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"srtm": {"t_star": 10}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"srtm3": {}}, schema)


def test_validate_config_models_checks_models_and_voxelwise_options():
    """The config check names every wrong option with its file and key; shared is fine."""
    from pipeline.kinetics import validate_config_models

    validate_config_models({"models": {"logan_ref": {"t_star": 10, "k2prime": "shared"},
                                       "mrtm2": {"k2prime": "shared"}},
                            "voxelwise": {"model": "logan_ref",
                                          "options": {"t_star": 10, "k2prime": "shared"}}})
    config = {"models": {"srtm": {"t_star": 10}, "mrtm2": {"tstar": 5}},
              "voxelwise": {"model": "srtm_bf", "options": {"t_star": 10}}}
    with pytest.raises(ConfigError) as err:
        validate_config_models(config, "config.yaml")
    text = str(err.value)
    for key in ("models.srtm.t_star", "models.mrtm2.tstar", "voxelwise.options.t_star"):
        assert f"config.yaml, {key}: " in text
    validate_config_models({"voxelwise": {"enabled": False, "model": "srtm_bf",
                                          "options": {"t_star": 10}}})


def test_load_config_refuses_an_option_the_model_does_not_take(tmp_path):
    """models.srtm.t_star fails when the config is read, naming the key."""
    from pipeline.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("models:\n  srtm:\n    t_star: 10\nprimary_model: srtm\n")
    with pytest.raises(ConfigError, match=r"models\.srtm\.t_star: model 'srtm' does not take"):
        load_config(path)


def test_config_schema_names_every_model_of_the_registry():
    """The config schema's model lists (models, primary_model, voxelwise.model) are the
    registry's names in its order: a new model is added in both or the test says where."""
    from pipeline.config import load_schema

    props = load_schema("config")["properties"]
    lists = {"models": props["models"]["propertyNames"]["enum"],
             "primary_model": props["primary_model"]["enum"],
             "voxelwise.model": props["voxelwise"]["properties"]["model"]["enum"]}
    for key, names in lists.items():
        assert names == list(MODELS), f"pipeline/data/config.schema.yaml, {key}: {names}"
