"""Tests of pipeline.config: schema validation, defaults, readable errors."""

from __future__ import annotations

import pytest

from pipeline import config as cfg
from pipeline.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_load_config_shipped_file_is_valid():
    """The shipped config validates and runs the demo study by default."""
    config = cfg.load_config()
    assert config["bids_dir"] == "demo"
    assert config["output_dir"] == "results"
    assert config["demo"]["subjects"] == 12


def test_load_config_fills_nested_defaults(tmp_path):
    """An empty file gets every default, including inside nested objects."""
    config = cfg.load_config(_write(tmp_path, ""))
    assert config["regions"] == "config/regions.yaml"
    assert config["selection"]["subjects"] is None
    assert config["selection"]["exclude_subjects"] == []
    assert config["demo"] == {"subjects": 12, "voxel_size": 3, "design": "windows",
                              "seed": 2013}


def test_load_config_overrides(tmp_path):
    """Overrides replace file values; dotted keys reach nested options."""
    path = _write(tmp_path, "bids_dir: /data/a\n")
    config = cfg.load_config(path, {"output_dir": "/out", "demo.subjects": 4})
    assert (config["bids_dir"], config["output_dir"], config["demo"]["subjects"]) == \
        ("/data/a", "/out", 4)


def test_load_config_misspelt_key_suggests(tmp_path):
    """A misspelt key fails by name with the closest valid key."""
    path = _write(tmp_path, "demo:\n  subject: 4\n")
    with pytest.raises(ConfigError, match=r"config\.yaml, demo: unknown key 'subject' "
                       r"\(did you mean 'subjects'\?\)"):
        cfg.load_config(path)


def test_load_config_top_level_typo(tmp_path):
    """A typo at the top level names the allowed keys."""
    with pytest.raises(ConfigError, match=r"unknown key 'bidsdir' \(did you mean 'bids_dir'"
                       r"\?\).*\n  Allowed keys here: bids_dir, demo"):
        cfg.load_config(_write(tmp_path, "bidsdir: /x\n"))


@pytest.mark.parametrize("text, message", [
    ("demo:\n  subjects: twelve\n", r"demo\.subjects: must be an integer, between 2 and 200 "
     r"\(Number of simulated subjects .*got 'twelve'"),
    ("demo:\n  design: blocks\n", r"demo\.design: must be one of 'windows', 'separate'"),
    ("demo:\n  voxel_size: 0.5\n", r"demo\.voxel_size: must be a number, between 1 and 10"),
    ("selection:\n  subjects: ['../../x']\n", r"selection\.subjects\.0: must be .*letters and "
     r"digits only.*got '\.\./\.\./x'"),
    ("selection:\n  subjects: [01]\n", r"selection\.subjects\.0: must be a string.*got 1\.\n"
     r"  Change the value\. Write it in quotes \('01'"),
    ("output_dir: 3\n", r"output_dir: must be a string"),
])
def test_load_config_wrong_values(tmp_path, text, message):
    """Wrong types and values name the key path, what is allowed and the value received."""
    with pytest.raises(ConfigError, match=message):
        cfg.load_config(_write(tmp_path, text))


def test_load_config_reports_every_problem(tmp_path):
    """Several problems are reported together."""
    path = _write(tmp_path, "demo:\n  subjects: x\n  seed: -1\nfoo: 1\n")
    with pytest.raises(ConfigError, match=r"^3 problems in the configuration") as info:
        cfg.load_config(path)
    assert "demo.seed" in str(info.value) and "'foo'" in str(info.value)


def test_load_config_refuses_a_repeated_key(tmp_path):
    """A key given twice in one section is named with both lines, not silently overwritten."""
    path = _write(tmp_path, "statistics:\n  null_drift:\n    pool: none\n    fit_start: 10\n"
                  "    pool: scans\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: the key 'pool' appears twice in "
                       r"one section \(lines 3 and 5\)") as info:
        cfg.load_config(path)
    assert "Delete one of the two" in str(info.value)


def test_same_key_in_different_sections_is_fine(tmp_path):
    """Only a repeat inside one mapping is refused; the same name in two sections is normal."""
    from pipeline.yamlfile import load_yaml

    assert load_yaml("a:\n  x: 1\nb:\n  x: 2\n") == {"a": {"x": 1}, "b": {"x": 2}}
    assert load_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")["other"] == {"x": 1, "y": 2}


@pytest.mark.parametrize("name", ["config.yaml", "regions.yaml", "config.schema.yaml",
                                  "regions.schema.yaml"])
def test_shipped_yaml_files_repeat_no_key(name):
    """The shipped files pass the strict reader (the default config once held a key twice)."""
    from pipeline.yamlfile import load_yaml

    assert isinstance(load_yaml(cfg.data_file(name).read_text()), dict)


@pytest.mark.parametrize("text, message", [
    ("a: [1,\n", r"not valid YAML"),
    ("- 1\n- 2\n", r"holds a YAML list, not a mapping"),
])
def test_load_config_bad_yaml(tmp_path, text, message):
    """Files that are not a YAML mapping are named."""
    with pytest.raises(ConfigError, match=r"config\.yaml: " + message):
        cfg.load_config(_write(tmp_path, text))


def test_load_config_missing_file(tmp_path):
    """A missing config file is named."""
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        cfg.load_config(tmp_path / "nope.yaml")


def test_validate_config_in_place():
    """validate_config fills the given dict, as the Snakefile uses it."""
    config = {"bids_dir": "/data"}
    assert cfg.validate_config(config) is config
    assert config["output_dir"] == "results"


def test_schema_properties_documented():
    """Top-level keys have a description and default; data/selection/demo keys in full."""
    def walk(props, prefix=""):
        for name, node in props.items():
            assert "description" in node, prefix + name
            assert {"type", "enum", "$ref", "oneOf", "anyOf"} & set(node), prefix + name
            if node.get("type") == "object":
                assert node.get("additionalProperties", True) is not True, prefix + name
                walk(node.get("properties", {}), f"{prefix}{name}.")

    schema = cfg.load_schema()
    assert schema["additionalProperties"] is False
    for name, node in schema["properties"].items():
        assert "description" in node and "default" in node, name
    foundation = ("bids_dir", "output_dir", "regions", "selection", "demo")
    walk({k: v for k, v in schema["properties"].items() if k in foundation})


def test_validate_config_correlation_group_must_be_a_design_level():
    """A correlation within a group needs design.groups and one of its levels."""
    config = cfg.load_config("config/config.yaml")
    config["statistics"]["correlations"][0]["group"] = "HC"
    with pytest.raises(ConfigError, match=r"correlations\[0\]\.group: group 'HC' but "
                                          "design.groups is not set"):
        cfg.validate_config(config)
    config["design"]["groups"] = {"column": "group", "levels": ["HC", "MDD"]}
    config["statistics"]["correlations"][0]["group"] = "XX"
    with pytest.raises(ConfigError, match=r"'XX' is not a level of design.groups \(HC, MDD\)"):
        cfg.validate_config(config)


def test_load_config_refuses_an_unknown_release_model(tmp_path):
    """statistics.null_drift.release_model outside the schema's list is one clear error
    naming the key (srtm2 and two_stage are library options: the fit step has no k2')."""
    for bad in ("lssrm", "srtm2"):
        path = _write(tmp_path, f"statistics:\n  null_drift:\n    release_model: {bad}\n")
        with pytest.raises(ConfigError, match="release_model"):
            cfg.load_config(path)
