"""The scan_figure step: each scan's QC overview drawn before the report, which embeds it.

What must hold: the figure the step draws is the figure the report would draw (the same
pixels), the report embeds it instead of drawing it only while it is current (same model,
reference and settings, not older than the tables it shows), and bad input gets one clear
error with nothing written.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import paths
from pipeline.errors import InputError
from pipeline.report import scans as scans_module
from pipeline.report import write_report
from pipeline.report.scan_figure import STAMP_KEY, write_scan_figure

STEM = "sub-01_task-rejection"


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _scan_paths(out: Path, stem: str = STEM, model: str = "logan_ref") -> dict[str, Path]:
    pet = out / f"sub-{stem[4:6]}" / "pet"
    label = paths.model_label(model)
    return {"fits": pet / paths.FIT_CURVES.format(scan=stem, model=label),
            "bp": pet / paths.FIT.format(scan=stem, model=label),
            "tacs": pet / f"{stem}_desc-default_tacs.tsv",
            "png": pet / paths.FIT_QC.format(scan=stem, model=label)}


@pytest.fixture
def study(synthetic_results, tmp_path) -> tuple[Path, dict]:
    """A private copy of the synthetic study (these tests add files to it)."""
    out, config = synthetic_results
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    return copy, dict(config, output_dir=str(copy))


def _report_figure(out: Path, config: dict, tmp: Path) -> bytes:
    figures = tmp / "figures"
    write_report(out, config, tmp / "report.html", figure_dir=figures)
    return (figures / "qc" / f"{STEM}_model-logan_ref_overview.png").read_bytes()


def test_drawn_figure_is_the_one_the_report_draws(study, tmp_path):
    """Same pixels (the step and the report share one drawing path); the stamp names the
    settings, so another spec's figure would not be taken for it."""
    out, config = study
    drawn_by_report = _report_figure(out, config, tmp_path / "a")
    p = _scan_paths(out)
    write_scan_figure(p["fits"], p["bp"], p["tacs"], p["png"], model="logan_ref",
                      reference="occipital")
    data = p["png"].read_bytes()
    assert np.array_equal(_pixels(data), _pixels(drawn_by_report))
    stamp = Image.open(p["png"]).info[STAMP_KEY]
    assert '"dpi": 72' in stamp and '"frame_z": 3.5' in stamp and '"occipital"' in stamp
    # the report now embeds that file: its copy under group/figures is the step's file
    assert _report_figure(out, config, tmp_path / "b") == data


def test_report_embeds_a_current_figure_and_redraws_a_stale_one(study, tmp_path,
                                                                  monkeypatch):
    out, config = study
    p = _scan_paths(out)
    write_scan_figure(p["fits"], p["bp"], p["tacs"], p["png"], model="logan_ref")
    drawn = []
    real = scans_module.plot_overview

    def counting(fits, frames, reference):
        drawn.append(len(fits))
        return real(fits, frames, reference)

    monkeypatch.setattr(scans_module, "plot_overview", counting)
    write_report(out, config, tmp_path / "r1.html", figure_dir=tmp_path / "f1")
    n_scans = len(list(out.glob("sub-*/pet/*_model-loganref_bp.tsv")))
    assert len(drawn) == n_scans - 1  # every scan but the one with a current figure

    # fits newer than the figure (e.g. refitted by hand): drawn again, not embedded stale
    later = p["png"].stat().st_mtime + 10
    os.utime(p["fits"], (later, later))
    drawn.clear()
    write_report(out, config, tmp_path / "r2.html", figure_dir=tmp_path / "f2")
    assert len(drawn) == n_scans


def test_report_with_other_settings_draws_its_own(study, tmp_path, monkeypatch):
    """A spec with another frame threshold marks other frames: the step's figure is not
    used for it."""
    import yaml

    from pipeline.report.build import DEFAULT_SPEC

    out, config = study
    p = _scan_paths(out)
    write_scan_figure(p["fits"], p["bp"], p["tacs"], p["png"], model="logan_ref")
    spec = yaml.safe_load(DEFAULT_SPEC.read_text())
    for section in spec["sections"]:
        if section["kind"] == "scan_qc":
            section["thresholds"]["frame_z"] = 2.0
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    drawn = []
    real = scans_module.plot_overview
    monkeypatch.setattr(scans_module, "plot_overview",
                        lambda *a: drawn.append(1) or real(*a))
    write_report(out, config, tmp_path / "r.html", spec=spec_path, figure_dir=tmp_path / "f")
    assert len(drawn) == len(list(out.glob("sub-*/pet/*_model-loganref_bp.tsv")))


def test_missing_tables_are_one_clear_error_and_nothing_is_written(study, tmp_path):
    out, _ = study
    p = _scan_paths(out)
    target = tmp_path / "overview.png"
    with pytest.raises(InputError) as err:
        write_scan_figure(tmp_path / "missing_fits.tsv", tmp_path / "missing_bp.tsv",
                          tmp_path / "missing_tacs.tsv", target, model="logan_ref")
    assert "missing_bp.tsv" in str(err.value) or "missing_tacs.tsv" in str(err.value)
    assert not target.exists() and not list(tmp_path.glob("*.png"))
    assert not p["png"].exists()
