"""End to end on a simulated scanner-space scan: motion, coregistration, normalization and
native-space TACs against the simulator's truth (slow: SyN takes about a minute)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("ants")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def preprocessed(scanner_study, tmp_path_factory):
    """Every step run on sub-01 (both scans) of the coarse noiseless study."""
    from pipeline.preprocess import (
        write_coregistration,
        write_motion,
        write_native_region_tacs,
        write_normalization,
    )
    from pipeline.preprocess.steps import write_segmentation

    out = tmp_path_factory.mktemp("derivatives")
    bids = scanner_study / "bids" / "sub-01"
    t1 = bids / "anat" / "sub-01_T1w.nii.gz"
    write_normalization(t1, out / "sub-01")
    write_segmentation(t1, out / "sub-01_desc-mnicoords_field.nii.gz", out / "sub-01")
    for task in ("rejection", "acceptance"):
        stem = out / f"sub-01_task-{task}"
        pet = bids / "pet" / f"sub-01_task-{task}_pet.nii.gz"
        write_motion(pet, f"{stem}_confounds.tsv", f"{stem}_mean.nii.gz")
        # mutual information only, then refined as the workflow does
        write_coregistration(f"{stem}_mean.nii.gz", t1, f"{stem}_mi_xfm.json")
        write_coregistration(f"{stem}_mean.nii.gz", t1, f"{stem}_xfm.json",
                             mnicoords_field=out / "sub-01_desc-mnicoords_field.nii.gz",
                             probseg_gm=out / "sub-01_label-GM_probseg.nii.gz",
                             probseg_wm=out / "sub-01_label-WM_probseg.nii.gz")
        write_native_region_tacs(pet, f"{stem}_confounds.tsv", f"{stem}_xfm.json",
                                 out / "sub-01_desc-mnicoords_field.nii.gz", None,
                                 f"{stem}_tacs.tsv")
    return out


@pytest.mark.parametrize("task", ["rejection", "acceptance"])
def test_motion_and_mapping_against_truth(scanner_study, preprocessed, task):
    """Motion within 0.5 mm RMS of the truth (the issue's criterion; measured 0.15 mm on
    this 4 mm grid), and every frame's voxels land within 3 mm (median over the head) of
    their true MNI position (measured 1.9 mm: normalization ~1.5 mm plus coregistration)."""
    from pipeline.preprocess import read_coregistration, read_field, read_motion
    from pipeline.preprocess.motion import head_mask
    from pipeline.simulate.scanner_study import read_scanner_truth
    from pipeline.simulate.scoring import mapping_error, motion_error

    stem = preprocessed / f"sub-01_task-{task}"
    _, frame_from_reference, meta = read_motion(f"{stem}_confounds.tsv")
    truth = read_scanner_truth(scanner_study / "truth", "sub-01", task)
    mean = nib.load(f"{stem}_mean.nii.gz")
    brain = head_mask(np.asarray(mean.dataobj), mean.affine, 0.3)
    points = np.argwhere(brain)[::3] @ mean.affine[:3, :3].T + mean.affine[:3, 3]
    error = motion_error(frame_from_reference, truth.motion, points)
    assert np.sqrt(np.mean(error ** 2)) < 0.5
    chain = mapping_error(truth, read_field(preprocessed / "sub-01_desc-mnicoords_field.nii.gz"),
                          read_coregistration(f"{stem}_xfm.json"), frame_from_reference,
                          points)
    assert np.median(chain) < 3.0
    assert meta["ScanExcluded"] is False


def _coregistration_error(scanner_study, preprocessed, task: str, name: str) -> float:
    """RMS distance (mm, over the head) between where the estimated motion reference ->
    T1w transform and the truth put each point, for the late frames (those of the PET mean;
    their motion estimates make the reference)."""
    from pipeline.bids import load_pet
    from pipeline.preprocess import read_coregistration, read_motion
    from pipeline.preprocess.motion import head_mask
    from pipeline.simulate.scanner_study import read_scanner_truth

    stem = preprocessed / f"sub-01_task-{task}"
    _, frame_from_reference, _ = read_motion(f"{stem}_confounds.tsv")
    truth = read_scanner_truth(scanner_study / "truth", "sub-01", task)
    frames = load_pet(scanner_study / "bids" / "sub-01" / "pet" /
                      f"sub-01_task-{task}_pet.nii.gz").frames
    t1_from_pet = read_coregistration(f"{stem}_{name}.json")
    mean = nib.load(f"{stem}_mean.nii.gz")
    points = np.argwhere(head_mask(np.asarray(mean.dataobj), mean.affine, 0.3))[::3]
    points = points @ mean.affine[:3, :3].T + mean.affine[:3, 3]
    errors = []
    for k in np.flatnonzero(frames.start >= 10.0):
        true_t1_from_reference = (np.linalg.inv(truth.scanner_from_native)
                                  @ np.linalg.inv(truth.motion[k]) @ frame_from_reference[k])
        moved = np.linalg.inv(true_t1_from_reference) @ t1_from_pet
        errors.append(np.sum((points @ moved[:3, :3].T + moved[:3, 3] - points) ** 2, axis=1))
    return float(np.sqrt(np.mean(errors)))


@pytest.mark.parametrize("task", ["rejection", "acceptance"])
def test_refined_coregistration_against_truth(scanner_study, preprocessed, task):
    """The synthetic-PET refinement puts the PET within 0.35 mm RMS of the true PET-T1w
    alignment on this coarse noiseless study (4 mm PET, 2 mm T1w; measured 0.22 mm for both
    scans, mutual information alone 0.67-0.69 mm) and does no worse than mutual information
    alone (0.05 mm slack for optimizer noise)."""
    mi = _coregistration_error(scanner_study, preprocessed, task, "mi_xfm")
    refined = _coregistration_error(scanner_study, preprocessed, task, "xfm")
    assert refined < 0.35, f"refined {refined:.3f} mm, mutual information {mi:.3f} mm"
    assert refined <= mi + 0.05, f"refined {refined:.3f} mm, mutual information {mi:.3f} mm"


def test_native_tacs_follow_the_true_regions(scanner_study, preprocessed):
    """Region TACs with the estimated transforms are within 6 % (median over regions and
    frames after 10 min) of the TACs with the true transforms on the same data."""
    import pandas as pd

    from pipeline.bids import load_pet
    from pipeline.preprocess.native_regions import extract_native_tacs
    from pipeline.preprocess.native_steps import mni_region_masks
    from pipeline.simulate.scanner_study import read_scanner_truth
    from pipeline.tables import read_tacs

    truth = read_scanner_truth(scanner_study / "truth", "sub-01", "rejection")
    pet = load_pet(scanner_study / "bids" / "sub-01" / "pet" / "sub-01_task-rejection_pet.nii.gz")
    masks = mni_region_masks(None)
    true_tacs, _ = extract_native_tacs(pet.data, masks, truth.head.mni_from_native,
                                       np.linalg.inv(truth.scanner_from_native), pet.affine,
                                       np.linalg.inv(truth.motion))
    estimated = read_tacs(preprocessed / "sub-01_task-rejection_tacs.tsv").tacs
    late = pet.frames.start >= 10.0
    ratio = estimated.to_numpy()[late] / pd.DataFrame(np.asarray(true_tacs),
                                                      columns=masks.names).to_numpy()[late]
    assert np.median(np.abs(ratio - 1.0)) < 0.06


def test_qc_figures(scanner_study, preprocessed):
    """Both QC figures are written as PNGs from the step outputs."""
    from pipeline.preprocess import write_preprocess_qc

    stem = preprocessed / "sub-01_task-rejection"
    write_preprocess_qc(f"{stem}_confounds.tsv", f"{stem}_mean.nii.gz",
                        scanner_study / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz",
                        f"{stem}_xfm.json",
                        preprocessed / "sub-01_space-MNI152NLin2009aSym_T1w.nii.gz",
                        f"{stem}_motion.png", f"{stem}_registration.png", title="sub-01")
    for name in ("motion", "registration"):
        data = (preprocessed / f"sub-01_task-rejection_{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
