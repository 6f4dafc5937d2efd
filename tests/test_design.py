"""Tests of pipeline.design: conditions, contrasts and model settings from the config."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.config import load_config
from pipeline.design import (
    k2prime_settings,
    load_design,
    model_options,
    needs_k2prime,
    region_models,
    scan_conditions,
)
from pipeline.errors import ConfigError


def _config(**design):
    base = {"conditions": {"rejbase": {"task": "rejection", "window": [5, 45]},
                           "rejection": {"task": "rejection", "window": [45, 90]},
                           "accbase": {"task": "acceptance", "window": [5, 45]},
                           "acceptance": {"task": "acceptance", "window": [45, 90]}},
            "contrasts": {"rejection": {"baseline": "rejbase", "condition": "rejection"},
                          "acceptance": {"baseline": "accbase", "condition": "acceptance"},
                          "rejvsacc": {"baseline": "rejbase", "condition": "rejection",
                                       "control": "acceptance"}}}
    base.update(design)
    return {"design": base}


def test_load_design_default_config_is_within_scan():
    """The shipped config describes the mission's within-scan windows design."""
    config = load_config("config/config.yaml")
    design = load_design(config)
    assert design.within_scan("rejection") and design.within_scan("acceptance")
    assert design.conditions["rejbase"].window == (5.0, 45.0)
    assert design.conditions["rejection"].window == (45.0, 90.0)
    assert design.contrasts["rejvsacc"].control == "acceptance"
    assert design.conditions_of("rejvsacc") == ["rejbase", "rejection", "accbase", "acceptance"]


def test_load_design_separate_scans():
    """Whole-scan conditions of different tasks are not within-scan."""
    design = load_design({"design": {
        "conditions": {"baseline": {"task": "baseline"}, "rejection": {"task": "rejection"}},
        "contrasts": {"rejection": {"baseline": "baseline", "condition": "rejection"}}}})
    assert not design.within_scan("rejection")
    assert design.conditions["baseline"].window is None


def test_scan_conditions_matches_task_and_session():
    """A scan contributes to the conditions of its task (and session when one is given)."""
    config = _config()
    config["design"]["conditions"]["late"] = {"task": "rejection", "session": "2"}
    scan = SimpleNamespace(task="rejection", ses="1")
    assert scan_conditions(config, scan) == ["rejbase", "rejection"]
    assert scan_conditions(config, SimpleNamespace(task="rejection", ses="2"))[-1] == "late"
    assert scan_conditions(config, SimpleNamespace(task="rest", ses=None)) == []


@pytest.mark.parametrize(("edit", "message"), [
    ({"conditions": {"rej-base": {"task": "rejection"}}}, r"(?s)rej-base.*letters and digits"),
    ({"contrasts": {"x": {"baseline": "nope", "condition": "rejection"}}},
     r"design.contrasts.x.baseline is 'nope', not a condition"),
    ({"contrasts": {"x": {"baseline": "rejbase", "condition": "rejbase"}}}, r"with itself"),
    ({"contrasts": {"x": {"baseline": "rejbase", "condition": "rejection",
                          "control": "y"}}}, r"control is 'y'"),
])
def test_load_design_rejects_bad_config(edit, message):
    """Bad names and references raise a ConfigError naming the key."""
    config = _config()
    config["design"].update(edit)
    with pytest.raises(ConfigError, match=message):
        load_design(config)


def test_load_design_rejects_bad_window():
    """A window must be [start, end] with start < end."""
    config = _config()
    config["design"]["conditions"]["rejbase"]["window"] = [45, 5]
    with pytest.raises(ConfigError, match=r"design.conditions.rejbase.window must be"):
        load_design(config)


def test_load_design_rejects_nested_control():
    """A control contrast may not have a control itself."""
    config = _config()
    config["design"]["contrasts"]["twice"] = {"baseline": "rejbase", "condition": "rejection",
                                             "control": "rejvsacc"}
    with pytest.raises(ConfigError, match=r"has a control itself"):
        load_design(config)


def test_region_models_primary_first_and_k2prime():
    """The primary model comes first; 'shared' k2' is recognised."""
    config = load_config("config/config.yaml")
    models = region_models(config)
    assert models[0] == config["primary_model"]
    assert needs_k2prime(model_options(config, "mrtm2"))
    settings = k2prime_settings(config)
    assert settings.model == "srtm" and settings.window == (0.0, 45.0)
    config["primary_model"] = "srtm"
    with pytest.raises(ConfigError, match=r"primary_model 'srtm' is not one of models"):
        region_models(config)
