"""The region-fit step per condition window: table, curves, sidecar, shared k2'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.kinetics import curves_path, fit_conditions, fit_regions, write_region_fits
from pipeline.simulate.compartments import srtm_consistent_tacs
from pipeline.tables import TacTable, read_json, read_table, write_json, write_tacs

BP = {"putamen": 2.0, "caudate": 1.5, "amygdala": 0.8}
CONDITIONS = [("rejbase", (0.0, 45.0)), ("rejection", (45.0, 90.0))]
ENTITIES = {"participant_id": "sub-01", "session": None, "task": "rejection", "run": None}


@pytest.fixture
def tacs(frames_90min) -> TacTable:
    """Reference (occipital) and three SRTM-consistent targets, k2' = 0.1/min."""
    ref, values = srtm_consistent_tacs(frames_90min, list(BP.values()), r1=[1.1, 0.9, 0.8],
                                       k2prime=0.1, input_scale=1000.0)
    table = pd.DataFrame(values, columns=list(BP))
    table.insert(0, "occipital", ref)
    return TacTable(frames_90min, table)


@pytest.fixture
def tacs_tsv(tmp_path, tacs):
    path = tmp_path / "sub-01_task-rejection_desc-default_tacs.tsv"
    write_tacs(path, tacs, {"TracerRadionuclide": "C11",
                            "regions": {r: {"n_voxels": 250} for r in [*BP, "occipital"]}})
    return path


def test_write_region_fits_curves_match_tacs_and_windows(tmp_path, tacs_tsv, tacs):
    """The curves file holds the measured TACs per condition and the fit on the window's
    frames only (Logan with t* = 10 min: fitted exactly on the used frames)."""
    out = tmp_path / "sub-01_task-rejection_model-logan_ref_bp.tsv"
    write_region_fits(tacs_tsv, out, reference="occipital", model="logan_ref",
                      conditions=CONDITIONS, options={"t_star": 10, "k2prime": 0.1},
                      entities=ENTITIES)
    curves = read_table(curves_path(out))
    assert sorted(curves["condition"].unique()) == ["rejbase", "rejection"]
    assert list(dict.fromkeys(curves["region"])) == list(BP)  # reference left out
    for (region, _), part in curves.groupby(["region", "condition"]):
        assert part["measured"].to_numpy() == pytest.approx(tacs.tacs[region].to_numpy())
    mid = (curves["frame_start"] + curves["frame_end"]) / 120
    rej = curves[curves["condition"] == "rejection"]
    inside = mid[rej.index][rej["used"]]
    assert (inside >= 45).all() and (inside <= 90).all()
    assert rej["used"].sum() == len(BP) * 5  # mid-times 47.5, 55, 65, 75, 85 min
    assert rej.loc[rej["used"], "fitted"].notna().all()
    assert rej.loc[~rej["used"], "fitted"].isna().all()


def test_write_region_fits_table_rows_entities_and_sidecar(tmp_path, tacs_tsv):
    """One row per condition and region with the entities first, n_voxels from the TAC
    sidecar, and a sidecar recording windows, k2' and the methods sentence."""
    out = tmp_path / "x_model-mrtm2_bp.tsv"
    table = write_region_fits(tacs_tsv, out, reference="occipital", model="mrtm2",
                              conditions=CONDITIONS, options={"k2prime": 0.1},
                              entities=ENTITIES)
    assert list(table.columns[:9]) == ["participant_id", "session", "task", "run",
                                       "condition", "window_start", "window_end", "region",
                                       "model"]
    assert len(table) == 6 and set(table["n_voxels"]) == {250.0}
    assert table["window_end"].tolist() == [45.0] * 3 + [90.0] * 3
    # noiseless SRTM-consistent TACs: only frame-integration error is left
    assert table["bp_nd"].to_numpy() == pytest.approx(list(BP.values()) * 2, rel=0.01)
    side = read_json(out.with_suffix(".json"))
    assert side["conditions"] == {"rejbase": [0.0, 45.0], "rejection": [45.0, 90.0]}
    assert side["k2prime"] == 0.1 and side["k2prime_source"] == "given"
    assert side["reference_region"] == "occipital" and "Ichise" in side["methods"]
    assert set(side["columns"]) >= set(table.columns)


def test_fit_regions_shared_k2prime(tacs):
    """k2prime: shared takes the subject's value; without one it is a clear error."""
    fits = fit_regions(tacs, reference="occipital", model="srtm2", conditions=CONDITIONS,
                       options={"k2prime": "shared"}, k2prime=0.1)
    assert fits.k2prime == {"rejbase": 0.1, "rejection": 0.1}
    assert fits.k2prime_source.startswith("the subject's shared k2'")
    with pytest.raises(InputError, match="asks for the subject's shared k2' but none"):
        fit_regions(tacs, reference="occipital", model="srtm2", options={"k2prime": "shared"})


def test_fit_regions_estimates_missing_k2prime_per_window(tacs):
    """mrtm2 without k2' takes the median MRTM k2' of the chosen regions in each window."""
    fits = fit_regions(tacs, reference="occipital", model="mrtm2", conditions=CONDITIONS,
                       k2prime_regions=["putamen", "caudate"])
    assert fits.k2prime_source == "median MRTM k2' over putamen, caudate"
    for value in fits.k2prime.values():
        assert value == pytest.approx(0.1, rel=0.01)  # noiseless: frame integration only


def test_fit_conditions_is_the_table_of_fit_regions(tacs):
    """fit_conditions (used by the null-drift simulation) returns the same table."""
    table = fit_conditions(tacs, reference="occipital", model="srtm_bf",
                           conditions=CONDITIONS)
    same = fit_regions(tacs, reference="occipital", model="srtm_bf",
                       conditions=CONDITIONS).table
    pd.testing.assert_frame_equal(table, same)


def test_write_region_fits_without_sidecar_and_bad_regions(tmp_path, tacs, frames_90min):
    """A TAC table without sidecar gets n_voxels n/a; unknown k2' regions are refused."""
    path = tmp_path / "plain_tacs.tsv"
    write_tacs(path, tacs)
    path.with_suffix(".json").unlink(missing_ok=True)
    table = write_region_fits(path, tmp_path / "p_bp.tsv", reference="occipital",
                              model="srtm_bf")
    assert table["n_voxels"].isna().all() and table["condition"].tolist() == ["all"] * 3
    with pytest.raises(InputError, match=r"k2prime_regions \['thalamus'\] are not target"):
        write_region_fits(path, tmp_path / "q_bp.tsv", reference="occipital", model="srtm2",
                          k2prime_regions=["thalamus"])
    assert not (tmp_path / "q_bp.tsv").exists()


def test_write_region_fits_reads_shared_k2prime_file(tmp_path, tacs_tsv):
    """The workflow passes the subject's k2' as a JSON file."""
    k2p = write_json(tmp_path / "sub-01_k2prime.json", {"k2prime": 0.1})
    table = write_region_fits(tacs_tsv, tmp_path / "s_bp.tsv", reference="occipital",
                              model="srtm2", options={"k2prime": "shared"},
                              k2prime_path=k2p)
    assert np.all(table["k2prime"] == 0.1)
    assert str(k2p) in read_json(tmp_path / "s_bp.json")["inputs"]
