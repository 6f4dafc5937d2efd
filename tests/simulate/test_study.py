"""The image study: BIDS-PET validity, reproducible bytes, truth, image physics, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import bids
from pipeline.cli import main
from pipeline.frames import decay_correction_factors
from pipeline.simulate import StudySettings, default_frames, simulate_study
from pipeline.simulate.noise import NoiseModel, frame_variance_scale
from pipeline.simulate.population import draw_population, study_streams
from pipeline.simulate.scans import simulate_scan_curves

# 6 mm voxels keep these tests fast; the physics does not depend on the grid.
VOXEL = 6.0
REQUIRED_PET_FIELDS = [
    "Manufacturer", "ManufacturersModelName", "Units", "TracerName", "TracerRadionuclide",
    "InjectedRadioactivity", "InjectedRadioactivityUnits", "InjectedMass", "InjectedMassUnits",
    "SpecificRadioactivity", "SpecificRadioactivityUnits", "ModeOfAdministration", "TimeZero",
    "ScanStart", "InjectionStart", "FrameTimesStart", "FrameDuration", "AcquisitionMode",
    "ImageDecayCorrected", "ImageDecayCorrectionTime", "ReconMethodName",
    "ReconMethodParameterLabels", "ReconFilterType", "ReconFilterSize",
    "AttenuationCorrection",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A 2-subject windows study (noisy)."""
    out = tmp_path_factory.mktemp("study")
    simulate_study(out, subjects=2, seed=4, voxel_size=VOXEL)
    return out


@pytest.fixture(scope="module")
def noiseless(tmp_path_factory) -> Path:
    """The same study without noise (same seed: same subjects and voxel variability)."""
    out = tmp_path_factory.mktemp("noiseless")
    simulate_study(out, subjects=2, seed=4, voxel_size=VOXEL, noise=0.0)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_passes_discovery_and_loading(study):
    """pipeline.bids finds 4 scans with the simulated frames, units and decay state."""
    scans = bids.discover_scans(study / "bids")
    assert sorted((s.sub, s.task) for s in scans) == [
        ("01", "acceptance"), ("01", "rejection"), ("02", "acceptance"), ("02", "rejection")]
    frames = default_frames()
    pet = bids.load_pet(scans[0])
    assert pet.data.shape[-1] == 28
    np.testing.assert_allclose(pet.frames.start, frames.start, atol=1e-6)
    assert scans[0].decay_corrected and scans[0].radionuclide == "C11"
    participants = bids.read_participants(study / "bids")
    assert list(participants.columns[:4]) == ["participant_id", "age", "sex", "resilience"]
    assert main(["check", str(study / "bids")]) == 0


def test_sidecar_has_required_bids_pet_fields(study):
    """Every REQUIRED BIDS-PET field, seconds, and the decay factors of the frames."""
    sidecar = json.loads((study / "bids/sub-01/pet/sub-01_task-rejection_pet.json").read_text())
    assert [f for f in REQUIRED_PET_FIELDS if f not in sidecar] == []
    assert sum(sidecar["FrameDuration"]) == pytest.approx(5400.0)
    assert sidecar["ModeOfAdministration"] == "bolus-infusion"
    assert sidecar["Units"] == "Bq/mL" and sidecar["ImageDecayCorrected"] is True
    expected = decay_correction_factors(default_frames(), 20.364)
    np.testing.assert_allclose(sidecar["DecayCorrectionFactor"], expected, rtol=1e-5)
    # the infusion is the part of the dose not in the bolus: T / (Kbol + T) with Kbol = 90
    assert sidecar["InfusionRadioactivity"] == pytest.approx(
        sidecar["InjectedRadioactivity"] * 90 / 180, rel=1e-3)


def test_same_seed_same_bytes(study, tmp_path):
    """A second run with the same arguments writes identical files (gzip mtime fixed)."""
    simulate_study(tmp_path, subjects=2, seed=4, voxel_size=VOXEL)
    assert _digest(tmp_path) == _digest(study)


def test_truth_tables_describe_the_study(study):
    """Truth: one row per scan, window and class; planted release matches effects.tsv."""
    truth = pd.read_csv(study / "truth/bp_nd.tsv", sep="\t")
    n_classes = len(StudySettings().all_classes)
    assert len(truth) == 4 * 2 * n_classes
    effects = pd.read_csv(study / "truth/effects.tsv", sep="\t")
    rej = effects.query("condition == 'rejection' and region == 'amygdala_l'")
    np.testing.assert_allclose(rej["change_pct"], -100 * rej["release_fraction"])
    info = json.loads((study / "truth/truth.json").read_text())
    assert info["planted"]["population_correlation"] == 0.6
    assert info["run"]["seed"] == 4 and not (study / "bids" / "truth").exists()


def test_noiseless_region_means_follow_partial_volume_weights(noiseless):
    """Region means of a noiseless image equal the PV weights times the class TACs.

    The only differences: voxel-level BP variability (zero-mean per class before the PSF,
    not exactly after it) and int16 storage; observed 0.15 %, tolerance 1 %.
    """
    from pipeline.regions import build_masks, load_region_config

    settings = StudySettings()
    population = draw_population(2, "windows", study_streams(4), settings)
    curves = simulate_scan_curves(population, settings, default_frames())
    mixing = pd.read_csv(noiseless / "truth/pv_mixing.tsv", sep="\t", index_col=0)
    scan = next(s for s in bids.discover_scans(noiseless / "bids")
                if s.sub == "01" and s.task == "rejection")
    pet = bids.load_pet(scan)
    masks = build_masks(load_region_config("config/regions.yaml"), pet.data.shape, pet.affine)
    w = masks.weights.reshape(len(masks.names), -1)
    measured = (w @ pet.data.reshape(-1, 28)) / w.sum(axis=1, keepdims=True)
    i = int(np.flatnonzero((curves.scans["participant_id"] == "sub-01")
                           & (curves.scans["task"] == "rejection"))[0])
    expected = mixing.loc[masks.names, curves.classes].to_numpy() @ curves.tacs[i].T
    np.testing.assert_allclose(measured[:, 5:], expected[:, 5:], rtol=0.01)


def test_image_noise_follows_count_model(study, noiseless):
    """(noisy - noiseless)^2 / (k A DCF / dt) averages to 1 in early and late frames.

    Thousands of brain voxels per frame (correlated over ~1 voxel at 6 mm): the mean of the
    standardized squares has an SE of a few % (observed 1.01-1.02). Tolerance 10 %.
    """
    name = "sub-02/pet/sub-02_task-acceptance_pet.nii.gz"
    noisy = bids.load_pet(study / "bids" / name).data
    clean = bids.load_pet(noiseless / "bids" / name).data
    scale = frame_variance_scale(default_frames(), NoiseModel())
    brain = clean[..., -1] > 0.3 * clean[..., -1].max()
    for frame in (3, 15, 27):
        z2 = (noisy[..., frame] - clean[..., frame])[brain] ** 2 / (
            scale[frame] * clean[..., frame][brain])
        assert z2.mean() == pytest.approx(1.0, abs=0.10)


def test_cli_simulate_writes_and_refuses_existing(tmp_path, capsys):
    """petbp simulate writes bids/ and truth/, and will not overwrite without --force."""
    args = ["simulate", "--out", str(tmp_path), "--subjects", "1", "--voxel-size", "6",
            "--design", "separate", "--null"]
    assert main(args) == 0
    assert len(list((tmp_path / "bids").glob("sub-1/pet/*_pet.nii.gz"))) == 0
    assert len(list((tmp_path / "bids").glob("sub-01/pet/*_pet.nii.gz"))) == 3
    assert main(args) == 1
    assert "already holds a simulated dataset" in capsys.readouterr().err
