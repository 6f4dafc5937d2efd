"""The workflow's fit_regions step: every model of a scan in one job (kinetics.scanfits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipeline.kinetics.release as release_module
from pipeline.errors import ConfigError
from pipeline.kinetics import curves_path, write_region_fits, write_scan_fits
from pipeline.simulate.compartments import srtm_consistent_tacs
from pipeline.tables import TacTable, read_json, read_table, write_json, write_tacs

BP = {"putamen": 2.0, "caudate": 1.5, "amygdala": 0.8}
# windows that follow one another: a within-scan design, so the release model runs
CONDITIONS = [("rejbase", (5.0, 45.0)), ("rejection", (45.0, 90.0))]
ENTITIES = {"participant_id": "sub-01", "session": None, "task": "rejection", "run": None}
OPTIONS = {"logan_ref": {"t_star": 10, "k2prime": "shared"}, "mrtm2": {"k2prime": 0.12}}


@pytest.fixture
def tacs_tsv(tmp_path, frames_90min):
    ref, values = srtm_consistent_tacs(frames_90min, list(BP.values()), r1=[1.1, 0.9, 0.8],
                                       k2prime=0.1, input_scale=1000.0)
    table = pd.DataFrame(values, columns=list(BP))
    table.insert(0, "occipital", ref)
    path = tmp_path / "sub-01_task-rejection_desc-default_tacs.tsv"
    write_tacs(path, TacTable(frames_90min, table),
               {"TracerRadionuclide": "C11",
                "regions": {r: {"n_voxels": 250} for r in [*BP, "occipital"]}})
    return path


def _counting_release(monkeypatch) -> list[int]:
    """Count the release model's fits (release_free_tacs calls)."""
    calls = []
    original = release_module.release_free_tacs

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(release_module, "release_free_tacs", counted)
    return calls


def test_scan_fits_are_the_one_model_fits_with_one_release_fit(tmp_path, tacs_tsv,
                                                                monkeypatch):
    """Every model's table, curves and sidecar are exactly what write_region_fits writes for
    that model alone (same numbers, bit for bit: the same code on the same inputs), while
    the release model is fitted once for the scan instead of once per model; the shared k2'
    file reaches only the model whose options say ``shared``."""
    k2p = write_json(tmp_path / "sub-01_k2prime.json", {"k2prime": 0.1})
    calls = _counting_release(monkeypatch)
    together, alone = tmp_path / "together", tmp_path / "alone"
    together.mkdir(), alone.mkdir()
    outputs = {m: together / f"s_model-{m}_bp.tsv" for m in OPTIONS}
    written = write_scan_fits(tacs_tsv, outputs, reference="occipital", options=OPTIONS,
                              conditions=CONDITIONS, entities=ENTITIES, k2prime_path=k2p,
                              release_fit_start=10.0)
    assert len(calls) == 1
    for model, options in OPTIONS.items():
        single = write_region_fits(tacs_tsv, alone / f"s_model-{model}_bp.tsv",
                                   reference="occipital", model=model, options=options,
                                   conditions=CONDITIONS, entities=ENTITIES,
                                   k2prime_path=k2p if options["k2prime"] == "shared" else None,
                                   release_fit_start=10.0)
        pd.testing.assert_frame_equal(written[model], single)
        for path in (outputs[model], curves_path(outputs[model])):
            pd.testing.assert_frame_equal(read_table(path), read_table(alone / path.name))
        sidecars = [read_json(p.with_suffix(".json"))
                    for p in (outputs[model], alone / outputs[model].name)]
        for sidecar in sidecars:
            del sidecar["Created"]  # the time it was written
        assert sidecars[0] == sidecars[1]
    assert len(calls) == 1 + len(OPTIONS)  # alone: one release fit per model
    # the release model ran (its columns are filled) and each model got its own k2'
    assert written["mrtm2"]["bp_nd_null"].notna().any()
    assert set(written["logan_ref"]["k2prime"]) == {0.1}
    assert set(written["mrtm2"]["k2prime"]) == {0.12}
    assert str(k2p) not in read_json(outputs["mrtm2"].with_suffix(".json"))["inputs"]


def test_scan_fits_pass_the_release_model_on(tmp_path, tacs_tsv):
    """release_model and baseline_start reach the release fit: the sidecar records them and
    the release-free fits differ from the plain release model's."""
    tables = {}
    for release_model in ("srtm", "early_step"):
        out = tmp_path / f"{release_model}_model-mrtm2_bp.tsv"
        tables[release_model] = write_scan_fits(
            tacs_tsv, {"mrtm2": out}, reference="occipital",
            options={"mrtm2": {"k2prime": 0.1}}, conditions=CONDITIONS,
            release_fit_start=10.0, release_model=release_model, baseline_start=20.0)["mrtm2"]
        record = read_json(out.with_suffix(".json"))["release_model"]
        assert record["release_model"] == release_model
        assert record.get("baseline_start_min") == (20.0 if release_model == "early_step"
                                                    else None)
    null = {m: t["bp_nd_null"].to_numpy(float) for m, t in tables.items()}
    assert np.isfinite(null["early_step"]).any()
    assert not np.allclose(null["srtm"], null["early_step"], equal_nan=True)


def test_scan_fits_without_release_model_fit_none(tmp_path, tacs_tsv, monkeypatch):
    """Without a release start (statistics.null_drift.method none) nothing is released."""
    calls = _counting_release(monkeypatch)
    written = write_scan_fits(tacs_tsv, {"mrtm2": tmp_path / "n_model-mrtm2_bp.tsv"},
                              reference="occipital", options={"mrtm2": {"k2prime": 0.1}},
                              conditions=CONDITIONS)
    assert calls == [] and written["mrtm2"]["bp_nd_null"].isna().all()


def test_scan_fits_refuse_a_model_without_options(tmp_path, tacs_tsv):
    """A model of the outputs missing from ``options`` is one clear error, nothing written."""
    out = tmp_path / "m_model-srtm_bp.tsv"
    with pytest.raises(ConfigError, match=r"no options given for model\(s\) srtm"):
        write_scan_fits(tacs_tsv, {"srtm": out}, reference="occipital",
                        options={"mrtm2": {}})
    assert not out.exists()
