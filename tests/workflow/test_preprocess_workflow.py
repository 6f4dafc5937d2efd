"""Scanner-space scans in the workflow: refused at parse time when they cannot be analysed
(``preprocessing: off``, or no T1w), and a small simulated scanner-space study run end to
end through motion correction, coregistration, normalization, native-space TACs, maps on
the MNI grid, the group steps and the report (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from painted import write_painted_study
from test_workflow import ROOT, _snakemake

SCANNER_SCAN = "sub-02/pet/sub-02_task-rejection_pet.nii.gz"


@pytest.fixture(scope="module")
def moved_study(tmp_path_factory) -> Path:
    """A painted MNI-space study in which one scan's header places it as a scanner would:
    rotated 15 degrees and shifted 30 mm (the data unchanged), with no T1w anywhere."""
    root = write_painted_study(tmp_path_factory.mktemp("moved") / "bids", subjects=2,
                               seed=5, voxel_size=6)
    path = root / SCANNER_SCAN
    img = nib.load(str(path))
    angle = np.radians(15.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    rotation[:3, 3] = [30.0, -20.0, 10.0]
    moved = nib.Nifti1Image(np.asarray(img.dataobj), rotation @ img.affine, img.header)
    moved.set_sform(rotation @ img.affine, code=1)
    moved.set_qform(rotation @ img.affine, code=1)
    nib.save(moved, str(path))
    return root


def test_scanner_space_with_preprocessing_off_is_refused(moved_study, tmp_path):
    """preprocessing: off with a scanner-space scan stops the run at parse time with one
    message naming the file and what to do; nothing is written."""
    out = tmp_path / "out"
    result = _snakemake("-n", config=ROOT / "tests/workflow/windows.yaml",
                        bids_dir=moved_study, output_dir=out, preprocessing="off")
    text = result.stderr + result.stdout
    assert result.returncode != 0
    assert "sub-02_task-rejection_pet.nii.gz" in text
    assert "scanner (native) space" in text and "preprocessing: auto" in text
    assert "sub-01_task-rejection_pet.nii.gz" not in text  # the MNI scans are not named
    assert not out.exists()


def test_scanner_space_without_t1w_is_refused(moved_study, tmp_path):
    """With auto the scan needs preprocessing, which needs the subject's T1w: the message
    names the scan, the anat folder looked in and the fix."""
    result = _snakemake("-n", config=ROOT / "tests/workflow/windows.yaml",
                        bids_dir=moved_study, output_dir=tmp_path / "out")
    text = result.stderr + result.stdout
    assert result.returncode != 0
    assert "sub-02_task-rejection_pet.nii.gz" in text and "T1w" in text
    assert "sub-02/anat" in text


def test_check_reports_space_and_plan(moved_study):
    """petbp check names each scan's space and the preprocessing it will get, and the
    refused scan as a problem."""
    from pipeline.cli.check import check_dataset

    summary, problems = check_dataset(moved_study)
    text = "\n".join(summary)
    assert "space of sub-01_task-rejection: mni space" in text
    assert "analysed as is" in text
    assert any("sub-02_task-rejection_pet.nii.gz" in p and "T1w" in p for p in problems)
