"""``petbp fit`` and write_region_fits: files, columns, sidecar and errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.kinetics import curves_path, write_region_fits
from pipeline.simulate.compartments import srtm_consistent_tacs
from pipeline.tables import TacTable, read_json, read_table, write_tacs

BP = {"putamen": 2.0, "caudate": 1.5, "amygdala": 0.8}


@pytest.fixture
def tacs_tsv(tmp_path, frames_90min):
    """A TAC table (seconds, Bq/mL) with a reference and three SRTM-consistent targets."""
    ref, tacs = srtm_consistent_tacs(frames_90min, list(BP.values()), r1=[1.1, 0.9, 0.8],
                                     k2prime=0.1, input_scale=1000.0)
    table = pd.DataFrame(tacs, columns=list(BP))
    table.insert(0, "cerebellum", ref)
    path = tmp_path / "sub-01_task-rest_desc-atlas_tacs.tsv"
    write_tacs(path, TacTable(frames_90min, table), {"TracerRadionuclide": "C11"})
    return path


def test_cli_fit_writes_table_sidecar_and_curves(tmp_path, tacs_tsv, capsys):
    """petbp fit writes OUT.tsv (one row per target), its sidecar and the fitted curves."""
    out = tmp_path / "fits" / "sub-01_model-srtm_bp.tsv"
    status = main(["fit", str(tacs_tsv), "--reference", "cerebellum", "--model", "srtm",
                   "--weights", "counts", "-o", str(out)])
    assert status == 0
    table = read_table(out)
    assert table["region"].tolist() == list(BP)
    assert table["bp_nd"].to_numpy() == pytest.approx(list(BP.values()), rel=0.005)
    assert table["k2prime"].to_numpy() == pytest.approx([0.1] * 3, rel=0.01)
    for column in ("r1", "k2", "se_bp_nd", "rmse", "nrmse", "n_frames", "flags"):
        assert column in table.columns
    sidecar = read_json(out.with_suffix(".json"))
    assert sidecar["model"] == "srtm" and sidecar["options"]["weights"] == "counts"
    assert "Lammertsma" in sidecar["methods"]
    curves = read_table(curves_path(out))
    assert curves_path(out).name == "sub-01_model-srtm_fits.tsv"
    assert len(curves) == 3 * 28 and set(curves["region"]) == set(BP)
    assert "putamen" in capsys.readouterr().out


def test_cli_fit_window_and_srtm2_median_k2prime(tmp_path, tacs_tsv):
    """srtm2 without --k2prime takes the median SRTM k2'; the window is recorded."""
    out = tmp_path / "s2_bp.tsv"
    assert main(["fit", str(tacs_tsv), "--reference", "cerebellum", "--model", "srtm2",
                 "--window", "0", "60", "-o", str(out)]) == 0
    table = read_table(out)
    assert table["bp_nd"].to_numpy() == pytest.approx(list(BP.values()), rel=0.005)
    assert table["window_end"].tolist() == [60.0] * 3
    assert read_json(out.with_suffix(".json"))["k2prime_source"].startswith("median SRTM")


def test_write_region_fits_k2prime_regions(tmp_path, tacs_tsv):
    """k2prime_regions picks the regions of the k2' estimate."""
    table = write_region_fits(tacs_tsv, tmp_path / "x_bp.tsv", reference="cerebellum",
                              model="srtm2", k2prime_regions=["putamen"])
    assert table["k2prime"].to_numpy() == pytest.approx([0.1] * 3, rel=1e-3)


@pytest.mark.parametrize(("args", "message"), [
    (["--reference", "occipital", "--model", "srtm"], "no region 'occipital'"),
    (["--reference", "cerebellum", "--model", "srtm", "--tstar", "10"],
     "does not take option"),
    (["--reference", "cerebellum", "--model", "srtm", "--window", "80", "90"],
     r"only 1 frame\(s\) to fit"),
])
def test_cli_fit_errors_are_messages(tmp_path, tacs_tsv, capsys, args, message):
    """Input and option problems exit 1 with petbp's message, no traceback, no output."""
    out = tmp_path / "bad_bp.tsv"
    assert main(["fit", str(tacs_tsv), *args, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "petbp fit: error:" in err and re.search(message, err)
    assert "Traceback" not in err and not out.exists()


def test_cli_fit_refuses_to_overwrite_input(tacs_tsv, capsys):
    """-o equal to the input TAC table is refused."""
    assert main(["fit", str(tacs_tsv), "--reference", "cerebellum", "--model", "srtm",
                 "-o", str(tacs_tsv)]) == 1
    assert "overwrite the input" in capsys.readouterr().err


def test_cli_fit_nan_region_is_flagged(tmp_path, tacs_tsv):
    """A region with a missing value gets n/a and the nan_input flag, the rest are fitted."""
    table = read_table(tacs_tsv)
    table.loc[5, "amygdala"] = np.nan
    table.to_csv(tacs_tsv, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "nan_bp.tsv"
    assert main(["fit", str(tacs_tsv), "--reference", "cerebellum", "--model", "srtm_bf",
                 "-o", str(out)]) == 0
    fits = read_table(out).set_index("region")
    assert np.isnan(fits.loc["amygdala", "bp_nd"]) and fits.loc["amygdala", "flags"] == \
        "nan_input"
    assert fits.loc["putamen", "bp_nd"] == pytest.approx(2.0, rel=0.005)


@pytest.mark.parametrize(("model", "extra"), [
    ("srtm", []), ("srtm_bf", ["--weights", "duration"]), ("srtm2", ["--k2prime", "0.1"]),
    ("mrtm", []), ("mrtm2", []), ("logan_ref", ["--tstar", "20"]),
    ("ratio", ["--window", "60", "90"])])
def test_cli_fit_every_model_writes_the_contract_columns(tmp_path, tacs_tsv, model, extra):
    """Every model name runs through petbp fit and fills the fit table's columns."""
    out = tmp_path / f"{model}_bp.tsv"
    assert main(["fit", str(tacs_tsv), "--reference", "cerebellum", "--model", model,
                 *extra, "-o", str(out)]) == 0
    table = read_table(out)
    for column in ("region", "model", "bp_nd", "r1", "k2", "k2prime", "se_bp_nd", "flags"):
        assert column in table.columns
    assert table["model"].tolist() == [model] * 3
    assert np.isfinite(table["bp_nd"]).all()
    if model.startswith(("srtm", "mrtm")):  # exact on SRTM-consistent data
        assert table["bp_nd"].to_numpy() == pytest.approx(list(BP.values()), rel=0.005)
