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


@pytest.fixture(scope="module")
def scanner_run(tmp_path_factory):
    """A 2-subject scanner-space study (4 mm PET, 2 mm T1w, noise 0.5) run end to end."""
    pytest.importorskip("ants")
    from pipeline.simulate.anatomy import T1Settings
    from pipeline.simulate.scanner_study import ScannerSettings, simulate_scanner_study

    root = tmp_path_factory.mktemp("scanner")
    settings = ScannerSettings(pet_voxel_mm=4.0, pet_shape=(64, 64, 48),
                               t1=T1Settings(voxel_mm=2.0, shape=(88, 104, 88)))
    simulate_scanner_study(root / "study", subjects=2, seed=3, mni_voxel_size=3.0,
                           scanner=settings, noise=0.5)
    out = root / "out"
    result = _snakemake(config=ROOT / "tests/workflow/scanner.yaml",
                        bids_dir=root / "study" / "bids", output_dir=out)
    return root, out, result


@pytest.mark.slow
def test_scanner_space_study_end_to_end(scanner_run):
    """Every scan is preprocessed and analysed: motion within the issue's 0.5 mm RMS of the
    simulator's truth, TACs and MNI frames without interpolated frames mixed up (same frame
    count, motion record in the sidecar), maps on the MNI grid, group tables, the report
    with each scan's motion and registration QC; a second run has nothing to do."""
    from pipeline.preprocess import read_motion
    from pipeline.preprocess.motion import head_mask
    from pipeline.simulate.scanner_study import read_scanner_truth
    from pipeline.simulate.scoring import motion_error

    root, out, result = scanner_run
    assert result.returncode == 0, result.stderr[-4000:]
    for sub in ("01", "02"):
        assert (out / f"sub-{sub}/anat/sub-{sub}_desc-mnicoords_field.nii.gz").is_file()
        assert (out / f"sub-{sub}/anat/sub-{sub}_label-GM_probseg.nii.gz").is_file()
        for task in ("rejection", "acceptance"):
            stem = out / f"sub-{sub}/pet/sub-{sub}_task-{task}"
            _, frame_from_reference, _ = read_motion(f"{stem}_desc-confounds_timeseries.tsv")
            truth = read_scanner_truth(root / "study" / "truth", f"sub-{sub}", task)
            mean = nib.load(f"{stem}_desc-hmcmean_pet.nii.gz")
            brain = head_mask(np.asarray(mean.dataobj), mean.affine, 0.3)
            points = np.argwhere(brain)[::3] @ mean.affine[:3, :3].T + mean.affine[:3, 3]
            error = motion_error(frame_from_reference, truth.motion, points)
            assert np.sqrt(np.mean(error ** 2)) < 0.5, (sub, task)
            tacs = pd.read_csv(f"{stem}_desc-default_tacs.tsv", sep="\t")
            meta = json.loads(Path(f"{stem}_desc-default_tacs.json").read_text())
            frames = json.loads(Path(f"{stem}_space-MNI152NLin2009aSym_desc-preproc_pet.json")
                                .read_text())["FrameDuration"]
            assert len(tacs) == len(frames) == 28 - len(meta["FramesExcluded"])
            assert meta["MotionThresholds"]["fd_mm"] == 2.0
            bpnd = nib.load(f"{stem}_model-loganref_cond-rejbase_bpnd.nii.gz"
                            if task == "rejection" else
                            f"{stem}_model-loganref_cond-accbase_bpnd.nii.gz")
            assert bpnd.shape == (91, 109, 91)  # the 2 mm MNI grid
            assert (out / f"sub-{sub}/pet/sub-{sub}_task-{task}_desc-motion_qc.png").is_file()
    bp = pd.read_csv(out / "group" / "bp_nd.tsv", sep="\t")
    assert len(bp) and bp["bp_nd"].notna().mean() > 0.9
    html = (out / "report.html").read_text()
    for task in ("rejection", "acceptance"):
        assert f"Motion QC of sub-01_task-{task}" in html
        assert f"Registration QC of sub-02_task-{task}" in html
    again = _snakemake("-n", config=ROOT / "tests/workflow/scanner.yaml",
                       bids_dir=root / "study" / "bids", output_dir=out)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


#: Preprocessing keys -> (new value, the root jobs an edit reruns on the 2-subject, 4-scan
#: scanner-space study). The thresholds redo no registration; the report prints the config.
PREPROCESS_EDITS = {
    "motion.fd_mm": (1.0, {"native_tacs": 4, "frames_to_mni": 4, "preprocess_qc": 4,
                           "report": 1}),
    "motion.max_displacement_mm": (5.0, {"native_tacs": 4, "frames_to_mni": 4,
                                         "preprocess_qc": 4, "report": 1}),
    "motion.max_outlier_fraction": (0.5, {"native_tacs": 4, "frames_to_mni": 4,
                                          "preprocess_qc": 4, "report": 1}),
    "motion.reference_start": (20.0, {"motion_correction": 4, "report": 1}),
    "normalization.resolution": (3.0, {"normalize_t1": 2, "report": 1}),
}


@pytest.mark.slow
@pytest.mark.calibration
def test_preprocessing_edits_rerun_what_reads_them(scanner_run, tmp_path):
    """The rerun matrix of the preprocessing keys on a scanner-space study (the main matrix,
    test_rerun.py, runs an MNI-space study where they reach no step)."""
    import copy

    import yaml
    from test_rerun import _plan, _set

    from pipeline.config import validate_config

    root, out, result = scanner_run
    assert result.returncode == 0, result.stderr[-4000:]
    base = yaml.safe_load((ROOT / "tests/workflow/scanner.yaml").read_text())
    base.update(bids_dir=str(root / "study" / "bids"), output_dir=str(out))
    validate_config(base)
    problems = []
    for key, (value, expected) in PREPROCESS_EDITS.items():
        edited = copy.deepcopy(base)
        _set(edited, key, value)
        path = tmp_path / f"{key}.yaml"
        path.write_text(yaml.safe_dump(edited, sort_keys=False))
        code, roots, text = _plan(path)
        if code != 0 or roots != expected:
            problems.append(f"{key}: exit {code}, roots {roots}, expected {expected}")
    assert not problems, "\n".join(problems)
