"""Scanner-space scans in the workflow: refused at parse time when they cannot be analysed
(``preprocessing: off``, or no T1w), and a small simulated scanner-space study run end to
end through motion correction, coregistration, normalization, native-space TACs, maps on
the MNI grid, the group steps and the report (slow)."""

from __future__ import annotations

import json
import re
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
    _move(root / SCANNER_SCAN)
    return root


def _move(path: Path) -> None:
    """Rewrite a scan's header as a scanner would place it: rotated 15 degrees and shifted
    30 mm (the data unchanged), xform codes 1."""
    img = nib.load(str(path))
    angle = np.radians(15.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    rotation[:3, 3] = [30.0, -20.0, 10.0]
    moved = nib.Nifti1Image(np.asarray(img.dataobj), rotation @ img.affine, img.header)
    moved.set_sform(rotation @ img.affine, code=1)
    moved.set_qform(rotation @ img.affine, code=1)
    nib.save(moved, str(path))


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


def _jobs(text: str) -> dict[str, int]:
    """Jobs per rule of a dry run's job table."""
    table = text.split("Job stats:", 1)[-1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _fake_motion(out: Path, scan: str, study: Path, largest_mm: float) -> None:
    """Motion-correction outputs of one scan (the checkpoint's), as if it had run: a
    confounds table whose displacement grows to ``largest_mm``, and a mean image."""
    from pipeline.tables import write_table

    img = nib.load(str(study / f"{scan}_pet.nii.gz"))
    n = img.shape[-1]
    table = pd.DataFrame({c: np.zeros(n) for c in ("trans_x", "trans_y", "trans_z", "rot_x",
                                                   "rot_y", "rot_z")})
    table["framewise_displacement"] = 0.1
    table["displacement"] = np.linspace(0.0, largest_mm, n)
    stem = out / scan
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_table(f"{stem}_desc-confounds_timeseries.tsv", table,
                {"FrameFromReference": [np.eye(4).tolist()] * n})
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., -1], img.affine),
             f"{stem}_desc-hmcmean_pet.nii.gz")


def test_scan_over_the_motion_limit_drops_out_of_the_analyses(moved_study, tmp_path):
    """The moved scan (given a T1w) is preprocessed. Before its motion correction ran the
    plan stops at that checkpoint (its TACs and fits are not yet asked for); once its
    confounds show a frame 12 mm from the reference, the DAG leaves its TACs, fits and maps
    out, says why on stderr, and still draws its QC; under a 20 mm limit they come back."""
    study = tmp_path / "bids"
    shutil.copytree(moved_study, study)
    (study / "sub-02/anat").mkdir()
    shutil.copyfile(study / SCANNER_SCAN, study / "sub-02/anat/sub-02_T1w.nii.gz")
    out = tmp_path / "out"
    windows = ROOT / "tests/workflow/windows.yaml"
    first = _snakemake("-n", config=windows, bids_dir=study, output_dir=out)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = _jobs(first.stdout)
    # the group steps wait for the decision: nothing that reads TACs is planned yet, but the
    # registrations (for the QC figures) go ahead beside motion correction
    assert jobs["motion_correction"] == 1 and jobs["preprocess_qc"] == 1
    assert jobs["coregister"] == 1 and jobs["normalize_t1"] == 1
    assert "native_tacs" not in jobs and "fit_regions" not in jobs, jobs
    assert not out.exists()  # a dry run writes nothing in the output

    scan = SCANNER_SCAN.removesuffix("_pet.nii.gz")
    _fake_motion(out, scan, study, largest_mm=12.0)
    excluded = _snakemake("-n", config=windows, bids_dir=study, output_dir=out)
    assert excluded.returncode == 0, excluded.stderr[-3000:]
    jobs = _jobs(excluded.stdout)
    assert "native_tacs" not in jobs and "frames_to_mni" not in jobs
    # 3 scans left: one fit job (every model) and one map job (every window) per scan
    assert jobs["fit_regions"] == 3 and jobs["parametric_maps_rejbase_rejection"] == 1
    assert jobs["parametric_maps_accbase_acceptance"] == 2
    assert jobs["preprocess_qc"] == 1 and jobs["coregister"] == 1  # its QC is still drawn
    assert "sub-02_task-rejection is excluded for head motion" in excluded.stderr
    assert "displaced 12.0 mm from the reference (> 10 mm)" in excluded.stderr
    assert "sub-02_task-rejection_model" not in excluded.stdout  # no fit, no map of it

    import yaml

    looser = yaml.safe_load(windows.read_text())
    looser["motion"] = {"max_displacement_mm": 20}
    (tmp_path / "looser.yaml").write_text(yaml.safe_dump(looser))
    kept = _snakemake("-n", config=tmp_path / "looser.yaml", bids_dir=study, output_dir=out)
    assert kept.returncode == 0, kept.stderr[-3000:]
    jobs = _jobs(kept.stdout)
    assert jobs["native_tacs"] == 1 and jobs["frames_to_mni"] == 1
    assert jobs["fit_regions"] == 4
    assert "excluded for head motion" not in kept.stderr


def test_subject_with_every_scan_excluded_leaves_the_group_steps(moved_study, tmp_path):
    """Every scan in scanner space (a T1w each): sub-02's two scans over the motion limit
    leave the fits, the subject's k2' and the maps, the contrasts are told why (their
    params); with every scan over it the run stops with one clear message."""
    study = tmp_path / "bids"
    shutil.copytree(moved_study, study)
    out = tmp_path / "out"
    for sub in ("01", "02"):
        (study / f"sub-{sub}/anat").mkdir(exist_ok=True)
        for task in ("rejection", "acceptance"):
            scan = f"sub-{sub}/pet/sub-{sub}_task-{task}"
            if scan + "_pet.nii.gz" != SCANNER_SCAN:
                _move(study / f"{scan}_pet.nii.gz")
            shutil.copyfile(study / f"{scan}_pet.nii.gz",
                            study / f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz")
            _fake_motion(out, scan, study, largest_mm=12.0 if sub == "02" else 1.0)
    windows = ROOT / "tests/workflow/windows.yaml"
    plan = _snakemake("-n", config=windows, bids_dir=study, output_dir=out)
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = _jobs(plan.stdout)
    assert jobs["native_tacs"] == 2 and jobs["fit_regions"] == 2
    assert jobs["region_qc"] == 1  # sub-01 only (its shared k2' comes with its 2 fit jobs)
    assert "estimate_k2prime" not in jobs
    assert jobs["preprocess_qc"] == 4 and jobs["normalize_t1"] == 2  # QC of every scan
    assert plan.stderr.count("excluded for head motion") == 2
    assert "sub-02" not in plan.stdout.split("rule collect_bp_nd:", 1)[1].split("output:")[0]

    for scan in ("sub-01/pet/sub-01_task-rejection", "sub-01/pet/sub-01_task-acceptance"):
        _fake_motion(out, scan, study, largest_mm=15.0)
    refused = _snakemake("-n", config=windows, bids_dir=study, output_dir=out)
    text = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "every scan is excluded for head motion" in text
    assert "motion.max_displacement_mm 10 mm" in text and "_desc-motion_qc.png" in text


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
#: scanner-space study). The thresholds redo no registration; the report prints the config;
#: motion correction is a checkpoint, so after it the plan shows only the steps it blocks.
PREPROCESS_EDITS = {
    "motion.fd_mm": (1.0, {"native_tacs": 4, "frames_to_mni": 4, "preprocess_qc": 4,
                           "report": 1}),
    # the scan limits decide only which scans the group steps read (none of the 4 crosses
    # these: the simulated motion stays under 5 mm), and the QC figures draw them
    "motion.max_displacement_mm": (8.0, {"preprocess_qc": 4, "report": 1}),
    "motion.max_outlier_fraction": (0.5, {"preprocess_qc": 4, "report": 1}),
    # motion correction reruns; until it has, the steps waiting for its exclusion decision
    # show placeholder params in the plan (the contrasts' excluded_scans, the voxelwise
    # steps' maps), so they count as roots here; they rerun anyway, after the new confounds
    "motion.reference_start": (20.0, {"motion_correction": 4, "contrasts": 1,
                                      "voxelwise_contrast": 2, "report": 1}),
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
        code, roots, _ = _plan(path)
        if code != 0 or roots != expected:
            problems.append(f"{key}: exit {code}, roots {roots}, expected {expected}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_scan_over_the_limit_leaves_the_finished_study(scanner_run, tmp_path):
    """A limit just under the largest displacement of the 4 scans excludes exactly that scan:
    the run completes without its fits, the contrasts name the reason, the report lists it,
    no registration is redone, and a second run has nothing to do. (Last in this file: it
    changes the finished study the tests above read.)"""
    import yaml

    from pipeline.preprocess.confounds import read_motion

    root, out, result = scanner_run
    assert result.returncode == 0, result.stderr[-4000:]
    largest = {}
    for confounds in sorted(out.glob("sub-*/pet/*_desc-confounds_timeseries.tsv")):
        table, _, _ = read_motion(confounds)
        largest[confounds.name.split("_desc-")[0]] = float(table["displacement"].max())
    worst = max(largest, key=largest.get)
    limit = round(largest[worst] - 0.05, 2)
    assert all(v < limit for k, v in largest.items() if k != worst), largest
    config = yaml.safe_load((ROOT / "tests/workflow/scanner.yaml").read_text())
    config["motion"] = {"max_displacement_mm": limit}
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(config))
    run = _snakemake(config=path, bids_dir=root / "study" / "bids", output_dir=out)
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"{worst} is excluded for head motion" in run.stderr
    for rule in ("motion_correction", "coregister", "normalize_t1", "native_tacs"):
        assert f"rule {rule}:" not in run.stdout + run.stderr, rule
    bp = pd.read_csv(out / "group" / "bp_nd.tsv", sep="\t")
    sub, task = worst.split("_")[0], worst.split("task-")[1]
    assert not ((bp["participant_id"] == sub) & (bp["task"] == task)).any()
    assert len(bp.groupby(["participant_id", "task"])) == 3
    exclusions = pd.read_csv(out / "group" / "exclusions.tsv", sep="\t")
    mine = exclusions[exclusions["participant_id"] == sub]
    motion = mine["reason"].str.contains(f"task-{task} scan was excluded for head motion")
    assert motion.any(), mine
    # every row of a contrast that reads the excluded scan names the motion; rows of the
    # subject's other contrasts may carry reasons of their own (a release model that did not
    # converge in a 39-voxel region of the kept scan, for one)
    reading = mine["contrast"].isin(mine.loc[motion, "contrast"])
    assert motion[reading].all(), mine
    assert not mine.loc[~reading, "reason"].str.contains(f"task-{task}").any(), mine
    html = (out / "report.html").read_text()
    assert 'id="motion-exclusions"' in html and "left out of every analysis" in html
    assert f"1 scan was excluded for head motion: {worst}" in (out / "methods.md").read_text()
    again = _snakemake("-n", config=path, bids_dir=root / "study" / "bids", output_dir=out)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
