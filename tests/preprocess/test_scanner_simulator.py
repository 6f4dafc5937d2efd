"""The scanner-space simulator: layout, headers, truth transforms, physics consistency."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import map_coordinates

from pipeline import bids
from pipeline.simulate.scanner_study import read_scanner_truth


def test_layout_and_headers(scanner_study):
    """BIDS layout with anat/sub-01_T1w.nii.gz; PET and T1w carry xform code 1 (scanner);
    pipeline.bids discovers the scans."""
    root = scanner_study / "bids"
    t1 = nib.load(str(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz"))
    assert t1.ndim == 3 and int(t1.header["sform_code"]) == 1
    scans = bids.discover_scans(root)
    assert sorted(s.task for s in scans) == ["acceptance", "rejection"]
    pet = nib.load(str(scans[0].image_path))
    assert pet.shape == (64, 64, 48, 28) and int(pet.header["qform_code"]) == 1
    for name in ("sub-01_anatomy.json", "sub-01_desc-warp_displacement.nii.gz",
                 "sub-01_task-rejection_motion.tsv", "sub-01_task-rejection_motion.json"):
        assert (scanner_study / "truth" / "transforms" / name).is_file()


def test_motion_truth_within_the_issue_bounds(scanner_study):
    """True motion stays within 3 mm and 2 deg at every frame and grows over the scan."""
    for task in ("rejection", "acceptance"):
        table = read_scanner_truth(scanner_study / "truth", "sub-01", task).table
        trans = np.linalg.norm(table[["trans_x", "trans_y", "trans_z"]].to_numpy(), axis=1)
        rot = np.degrees(np.linalg.norm(table[["rot_x", "rot_y", "rot_z"]].to_numpy(), axis=1))
        assert trans.max() <= 3.0 + 1e-9 and rot.max() <= 2.0 + 1e-9
        assert trans[-5:].mean() > trans[:5].mean()


@pytest.fixture(scope="module")
def mni_study(tmp_path_factory):
    """The same study (seed, subjects, phantom voxel) simulated on the MNI grid."""
    from pipeline.simulate import simulate_study

    out = tmp_path_factory.mktemp("mni_study")
    simulate_study(out, subjects=1, seed=3, voxel_size=3.0, noise=0.0)
    return out


def test_same_subjects_as_the_mni_study(scanner_study, mni_study):
    """Same seed and phantom voxel: the same truth table as simulate_study."""
    a = pd.read_csv(scanner_study / "truth" / "bp_nd.tsv", sep="\t")
    b = pd.read_csv(mni_study / "truth" / "bp_nd.tsv", sep="\t")
    pd.testing.assert_frame_equal(a, b)


def test_frames_show_mni_activity_through_the_true_transforms(scanner_study, mni_study):
    """A scanner voxel of frame k holds the MNI study's noiseless value at the point the
    truth maps it to (cubic sampling of a PSF-smooth image: within 3 % of the brain mean)."""
    mni = nib.load(str(mni_study / "bids" / "sub-01" / "pet" /
                       "sub-01_task-rejection_pet.nii.gz"))
    scan = nib.load(str(scanner_study / "bids" / "sub-01" / "pet" /
                        "sub-01_task-rejection_pet.nii.gz"))
    truth = read_scanner_truth(scanner_study / "truth", "sub-01", "rejection")
    scan_data, mni_data = scan.get_fdata(), mni.get_fdata()
    for k in (3, 27):
        frame = scan_data[..., k]
        voxels = np.argwhere(frame > 0.3 * frame.max())[::7]
        points = voxels @ scan.affine[:3, :3].T + scan.affine[:3, 3]
        mni_voxels = np.linalg.inv(mni.affine)
        where = truth.mni_from_frame(k, points) @ mni_voxels[:3, :3].T + mni_voxels[:3, 3]
        expected = map_coordinates(mni_data[..., k], where.T, order=3)
        error = np.abs(frame[tuple(voxels.T)] - expected) / frame[frame > 0.3 * frame.max()
                                                                  ].mean()
        assert np.median(error) < 0.03
        # A wrong frame's transform misplaces the values much more.
        wrong = truth.mni_from_frame(0, points + np.array([6.0, 0.0, 0.0]))
        off = map_coordinates(mni_data[..., k], (wrong @ mni_voxels[:3, :3].T
                                                 + mni_voxels[:3, 3]).T, order=3)
        assert np.median(np.abs(frame[tuple(voxels.T)] - off)) > 3 * np.median(
            np.abs(frame[tuple(voxels.T)] - expected))


@pytest.mark.parametrize("task", ["rejection"])
def test_space_detection_calls_it_scanner(scanner_study, task):
    """The simulated scanner-space scan is detected as scanner space."""
    from pipeline.preprocess.plan import plan_scan

    plan = plan_scan(scanner_study / "bids" / "sub-01" / "pet" /
                     f"sub-01_task-{task}_pet.nii.gz", "auto")
    assert plan.preprocess and plan.evidence.space == "scanner"
    assert plan.t1w.name == "sub-01_T1w.nii.gz"
