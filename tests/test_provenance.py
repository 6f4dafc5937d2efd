"""Config values per step (params), their record in sidecars, the report's comparison, the
path templates, the derivatives description and the lazy command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from pipeline import paths
from pipeline.cli import COMMANDS, build_parser
from pipeline.config import (
    config_value,
    config_values,
    data_file,
    effective_config,
    load_config,
    resolve_region_config,
)
from pipeline.derivatives import config_checksum, write_dataset_description
from pipeline.report.staleness import config_mismatches
from pipeline.tables import CONFIG_USED, record_config_used, write_table


def test_config_values_by_dotted_key():
    config = {"statistics": {"alpha": 0.05, "null_drift": {"sys_sd": 1.5}}, "models": {"a": None}}
    assert config_value(config, "statistics.null_drift.sys_sd") == 1.5
    assert config_value(config, "statistics.missing.key", "x") == "x"
    values = config_values(config, ["statistics.alpha", "models.a", "nope"])
    assert values == {"statistics.alpha": 0.05, "models.a": None, "nope": None}
    values["statistics.alpha"] = 1
    assert config["statistics"]["alpha"] == 0.05  # copies, not views


def test_effective_config_drops_what_cannot_matter():
    config = load_config(overrides={"bids_dir": "/data/study"})
    effective = effective_config(config)
    assert "demo" not in effective and "demo" in config
    assert "k2prime" in effective  # the default models use the shared k2'
    plain = load_config(overrides={"bids_dir": "/data/study", "models": {"srtm": {}},
                                   "primary_model": "srtm", "voxelwise.enabled": False})
    effective = effective_config(plain)
    assert "k2prime" not in effective and effective["voxelwise"] == {"enabled": False}
    assert "demo" in effective_config(load_config())  # the demo: its keys matter


def test_record_config_used_updates_table_sidecars(tmp_path):
    table = write_table(tmp_path / "t.tsv", pd.DataFrame({"a": [1]}), {"Description": "x"})
    figure = tmp_path / "f.png"
    figure.write_bytes(b"png")
    k2prime = tmp_path / "sub-01_k2prime.json"
    k2prime.write_text(json.dumps({"k2prime": 0.1}))
    done = record_config_used([table, figure, k2prime], {"statistics.alpha": 0.05})
    assert done == [tmp_path / "t.json", k2prime]
    assert json.loads(k2prime.read_text()) == {"k2prime": 0.1,
                                               CONFIG_USED: {"statistics.alpha": 0.05}}
    sidecar = json.loads((tmp_path / "t.json").read_text())
    assert sidecar[CONFIG_USED] == {"statistics.alpha": 0.05}
    assert sidecar["Description"] == "x"


def test_config_mismatches_name_file_key_and_values(tmp_path):
    group = tmp_path / "group"
    write_table(group / "contrasts.tsv", pd.DataFrame({"a": [1]}),
                {CONFIG_USED: {"statistics.alpha": 0.05, "design.conditions.base.window":
                               [5, 45]}})
    config = {"statistics": {"alpha": 0.05}, "design": {"conditions": {"base": {
        "window": [5.0, 45.0]}}}}
    assert config_mismatches(tmp_path, config).empty  # 5 == 5.0, lists alike
    config["statistics"]["alpha"] = 0.01
    found = config_mismatches(tmp_path, config)
    assert found.to_dict("records") == [{"file": "group/contrasts.json",
                                         "key": "statistics.alpha", "recorded": "0.05",
                                         "current": "0.01"}]


def test_model_labels_are_alphanumeric_and_distinct():
    from pipeline.kinetics import MODELS

    labels = [paths.model_label(m) for m in MODELS]
    assert all(label.isalnum() for label in labels)
    assert len(set(labels)) == len(labels)
    assert all(paths.model_name(paths.model_label(m)) == m for m in MODELS)


@pytest.mark.parametrize(("name", "kind", "fields"), [
    ("sub-01_task-rej_model-loganref_bp.tsv", "bp", {"model": "loganref"}),
    ("sub-01_ses-1_task-rej_run-2_model-mrtm2_fits.tsv", "fits", {"model": "mrtm2"}),
    ("sub-01_task-rej_model-loganref_cond-rejbase_bpnd.nii.gz", "map",
     {"model": "loganref", "cond": "rejbase"}),
    ("sub-01_task-rej_desc-default_tacs.tsv", "tacs", {"regionset": "default"}),
    ("sub-01_task-rej_desc-analysis_mask.nii.gz", "mask", {}),
    ("sub-01_task-rej_desc-default_regions.png", "region_qc", {"regionset": "default"}),
])
def test_parse_scan_file_reads_the_templates_back(name, kind, fields):
    found = paths.parse_scan_file(name)
    assert found is not None and found[0] == kind
    assert {k: v for k, v in found[1].items() if k != "stem"} == fields
    template = {"bp": paths.FIT, "fits": paths.FIT_CURVES, "map": paths.MAP,
                "tacs": paths.TACS, "mask": paths.MASK, "region_qc": paths.REGION_QC}[kind]
    assert template.format(scan=found[1]["stem"], **fields) == name
    assert paths.parse_scan_file("sub-01_task-rej_model-logan_ref_bp.tsv") is None


def test_dataset_description(tmp_path):
    config = {"b": 1, "a": {"y": 2, "x": 3}}
    assert config_checksum(config) == config_checksum({"a": {"x": 3, "y": 2}, "b": 1})
    assert config_checksum(config) != config_checksum({"b": 2, "a": {"y": 2, "x": 3}})
    path = write_dataset_description(tmp_path / "dataset_description.json",
                                     sources=[{"URL": "file:///data"}],
                                     command=["snakemake", "--cores", "2"], config=config)
    description = json.loads(path.read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Command"] == "snakemake --cores 2"
    assert description["GeneratedBy"][0]["ConfigSHA256"] == config_checksum(config)
    assert description["SourceDatasets"] == [{"URL": "file:///data"}]


def test_package_data_and_default_regions(tmp_path, monkeypatch):
    """Defaults are package data; the default regions value works outside a clone."""
    for name in ("config.yaml", "regions.yaml", "config.schema.yaml", "regions.schema.yaml"):
        assert data_file(name).is_file()
    monkeypatch.chdir(tmp_path)
    assert resolve_region_config("config/regions.yaml") == data_file("regions.yaml")
    assert resolve_region_config("my.yaml").name == "my.yaml"


def test_command_registry_matches_the_modules():
    """petbp --help lists each command with the help its module registers."""
    import importlib

    for name, (module, help_text) in COMMANDS.items():
        parser = build_parser(name)
        action = next(a for a in parser._subparsers._group_actions)
        choice = next(c for c in action._choices_actions if c.dest == name)
        assert choice.help == help_text, name
        assert hasattr(importlib.import_module(module), "add_parser")


def test_version_and_help_do_not_load_the_scientific_stack():
    code = ("import sys; from pipeline.cli import main\n"
            "for args in (['--version'], ['--help']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "heavy = [m for m in ('numpy', 'pandas', 'nibabel', 'scipy', 'yaml') "
            "if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
