"""The ``petbp`` command as installed, run from a folder outside the source tree.

CI builds a wheel, installs it (non-editable) in a fresh venv and runs this file from a
temporary folder with ``PETBP_FROM_WHEEL=1``; then ``pipeline`` must come from that venv,
not from a checkout. In the development venv the same tests run against the editable
install. Every command runs as a subprocess with a temporary working directory, so nothing
can be found through the current directory (no ``config/``, no ``workflow/``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from factories import make_bids, scan_files, write_image

import pipeline
from pipeline.frames import Frames
from pipeline.simulate.compartments import srtm_consistent_tacs

PETBP = str(Path(sys.executable).with_name("petbp"))
SHAPE = (6, 6, 6)


def petbp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PETBP, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def frames() -> Frames:
    durations = np.array([30] * 6 + [60] * 5 + [120] * 5 + [180] * 4 + [300] * 4 + [600] * 4,
                         float)
    return Frames.from_bids(np.concatenate([[0.0], np.cumsum(durations)[:-1]]), durations)


def test_runs_from_the_installed_package(tmp_path):
    """The package and its data files come from the install; from a wheel, not a checkout."""
    source = Path(pipeline.__file__).resolve().parent
    for name in ("config.yaml", "regions.yaml", "config.schema.yaml", "regions.schema.yaml"):
        assert (source / "data" / name).is_file(), name
    if os.environ.get("PETBP_FROM_WHEEL"):
        assert "site-packages" in source.parts, source
        assert not (source.parent / "Snakefile").exists()  # not a source tree


def test_version(tmp_path):
    """``petbp --version`` prints the package version."""
    result = petbp("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"petbp {pipeline.__version__}"


def test_simulate_then_check(tmp_path):
    """``simulate`` writes a study (region config from the package) that ``check`` passes
    with the shipped default config."""
    start = time.perf_counter()
    result = petbp("simulate", "--out", "sim", "--subjects", "2", "--voxel-size", "6",
                   "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "sim/bids/participants.tsv").is_file()
    assert sorted(p.name for p in (tmp_path / "sim/bids/sub-01/pet").glob("*_pet.nii.gz")) == \
        ["sub-01_task-acceptance_pet.nii.gz", "sub-01_task-rejection_pet.nii.gz"]
    check = petbp("check", "sim/bids", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK: the dataset can be analysed" in check.stdout
    assert time.perf_counter() - start < 600


def test_simulate_scanner_space_then_check(tmp_path):
    """``simulate --space scanner`` writes a raw study: PET on the scanner's grid (xform code
    1, the matrix of --scanner-voxel-size over a 256x256x192 mm field of view), a T1w, the
    true pose and motion of each scan; ``check`` finds it in scanner space with a plan to
    preprocess it. --space scanner with --demo is refused with the fix."""
    result = petbp("simulate", "--space", "scanner", "--out", "raw", "--subjects", "1",
                   "--voxel-size", "6", "--scanner-voxel-size", "8", "--seed", "1",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "scanner space, a T1w per subject" in result.stdout
    bids = tmp_path / "raw/bids"
    assert (bids / "sub-01/anat/sub-01_T1w.nii.gz").is_file()
    img = nib.load(str(bids / "sub-01/pet/sub-01_task-rejection_pet.nii.gz"))
    assert img.shape[:3] == (32, 32, 24) and int(img.header["sform_code"]) == 1
    assert np.allclose(np.diag(img.affine)[:3], 8.0)
    truth = tmp_path / "raw/truth/transforms"
    for name in ("sub-01_anatomy.json", "sub-01_task-rejection_motion.tsv",
                 "sub-01_task-acceptance_motion.json"):
        assert (truth / name).is_file(), name
    motion = pd.read_csv(truth / "sub-01_task-rejection_motion.tsv", sep="\t")
    assert len(motion) == img.shape[3]
    check = petbp("check", "raw/bids", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "space of sub-01_task-rejection: scanner space" in check.stdout
    assert "coregistration to sub-01_T1w.nii.gz" in check.stdout
    refused = petbp("simulate", "--space", "scanner", "--demo", "--out", "x", cwd=tmp_path)
    assert refused.returncode != 0 and "--space scanner" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_fit_recovers_bp(tmp_path, frames):
    """``fit`` on noiseless SRTM TACs (BP_ND 0.5 and 1.5, k2' 0.12/min) recovers BP_ND
    within 1 % (frame-averaged model data; the tolerance covers the linearisation of
    MRTM2's operational equation, measured at 0.25 % in tests/kinetics)."""
    _ref, tacs = srtm_consistent_tacs(frames, [0.0, 0.5, 1.5], k2prime=0.12)
    table = pd.DataFrame({"frame_start": frames.start_seconds, "frame_end": frames.end_seconds,
                          "occipital": tacs[:, 0], "low": tacs[:, 1], "high": tacs[:, 2]})
    table.to_csv(tmp_path / "tacs.tsv", sep="\t", index=False)
    result = petbp("fit", "tacs.tsv", "--reference", "occipital", "--model", "mrtm2",
                   "--k2prime", "0.12", "-o", "fits.tsv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fits = pd.read_csv(tmp_path / "fits.tsv", sep="\t").set_index("region")
    assert fits.loc["low", "bp_nd"] == pytest.approx(0.5, rel=0.01)
    assert fits.loc["high", "bp_nd"] == pytest.approx(1.5, rel=0.01)


def test_map_on_a_bids_pet_image(tmp_path, frames):
    """``map`` on a ``*_pet.nii.gz`` (sidecar beside it) writes BP_ND within 0.5 % of 1.5."""
    _ref, tacs = srtm_consistent_tacs(frames, [0.0, 1.5], k2prime=0.12)
    data = np.empty((*SHAPE, frames.n_frames), np.float32)
    data[:] = tacs[:, 1]
    data[0] = tacs[:, 0]
    root = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"], shape=SHAPE,
                     durations=list(frames.duration * 60), units="Bq/mL",
                     data=lambda stem, shape: data)
    mask = np.zeros(SHAPE, np.float32)
    mask[0] = 1
    ref = write_image(tmp_path / "ref.nii.gz", mask)
    result = petbp("map", scan_files(root)[0], "--reference-mask", ref, "--model", "mrtm2",
                   "--k2prime", "0.12", "-o", "maps/sub-01", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    bpnd = np.asarray(nib.load(tmp_path / "maps/sub-01_bpnd.nii.gz").dataobj)
    assert np.nanmedian(bpnd[1:]) == pytest.approx(1.5, rel=0.005)
    assert json.loads((tmp_path / "maps/sub-01_bpnd.json").read_text())["model"] == "mrtm2"
