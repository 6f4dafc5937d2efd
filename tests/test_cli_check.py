"""Tests of ``petbp check``: the summary of a valid dataset and one message per bad input.

Every bad-input case checks the exit status (1), that the message names the file and says
what to fix, that no traceback is printed and that nothing is written anywhere.
"""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from factories import make_bids, scan_files, write_image

from pipeline.cli import check, main

# the toy images carry no anatomy: taken as MNI (space detection: test_space_detect.py)
pytestmark = pytest.mark.usefixtures("toy_images_in_mni")


@pytest.fixture(autouse=True)
def _no_design(monkeypatch):
    """Check the input layer alone: conditions come from the design stage (tested there)."""
    monkeypatch.setattr(check, "_design_summary", lambda *args, **kwargs: [])


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _run(capsys, *args):
    status = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_check_valid_dataset_summary(tmp_path, capsys, monkeypatch):
    """A valid dataset gives exit 0 and a summary of scans, frames, units, scores, space."""
    root = make_bids(tmp_path / "bids", decay_corrected=False)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    status, out, err = _run(capsys, root)
    assert status == 0, err
    assert "subjects with PET scans: 2 (sub-01, sub-02)" in out
    assert "task-rejection: 2" in out
    assert "5 frames, 0-20 min after injection (4 scans)" in out
    assert "kBq/mL (4 scans)" in out
    assert "0 scans decay-corrected, 4 to be corrected on load" in out
    assert "carfentanil (C11, half-life 20.364 min)" in out
    assert "overlap the MNI brain" in out and "space of sub-01_task-rejection: mni space" in out
    assert "score resilience: n=2, range 40 to 43" in out
    assert out.rstrip().endswith("OK: the dataset can be analysed.")
    assert _snapshot(tmp_path) == before


def test_check_participant_label_selects(tmp_path, capsys):
    """--participant-label takes labels with or without sub-."""
    root = make_bids(tmp_path, subjects=["01", "02", "03"])
    status, out, _ = _run(capsys, root, "--participant-label", "sub-02", "03")
    assert status == 0
    assert "subjects with PET scans: 2 (sub-02, sub-03)" in out


def test_check_shows_conditions_when_design_exists(tmp_path, capsys, monkeypatch):
    """The hook calls pipeline.design.scan_conditions for every scan."""
    import pipeline.design

    monkeypatch.undo()  # restore the real _design_summary
    monkeypatch.setattr(pipeline.design, "scan_conditions",
                        lambda config, scan: [f"cond{scan.task}"], raising=False)
    monkeypatch.setattr(pipeline.design, "load_design",
                        lambda config: SimpleNamespace(conditions={}), raising=False)
    status, out, _ = _run(capsys, make_bids(tmp_path))
    assert status == 0
    assert "conditions of sub-01_task-rejection: condrejection" in out


def test_check_condition_window_outside_scan(tmp_path, capsys, monkeypatch):
    """A condition window after the end of the scan is named with the scan's time span."""
    import pipeline.design

    monkeypatch.undo()
    window = SimpleNamespace(window=(45.0, 90.0))
    monkeypatch.setattr(pipeline.design, "scan_conditions", lambda config, scan: ["late"])
    monkeypatch.setattr(pipeline.design, "load_design", lambda config: SimpleNamespace(
        conditions={"late": window, "other": window}))
    status, _, err = _run(capsys, make_bids(tmp_path))
    assert status == 1
    assert "condition 'late' uses minutes 45-90, but no frame of sub-01_task-acceptance" in err
    assert "(the scan covers 0-20 min)" in err
    assert "design.conditions: no selected scan holds other" in err


def _truncate(root):
    path = scan_files(root)[0]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _huge_header(root):
    path = scan_files(root)[0]
    header = nib.load(str(path)).header.copy()
    header.set_data_shape((4000, 4000, 4000, 5))
    with gzip.open(path, "wb") as handle:
        handle.write(header.binaryblock + b"\0" * 4)


def _native_space(stem, shape):
    return np.ones(shape, np.float32)


def _nan_centre(stem, shape):
    values = np.ones(shape, np.float32)
    values[3, 3, 2] = np.nan
    return values


def _edit_sidecar(root, **fields):
    path = next(root.glob("sub-01/pet/sub-01_task-rejection_pet.json"))
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


# (case id, make_bids keyword arguments, function that then breaks the dataset,
#  extra CLI arguments, regex the message must match)
BAD = [
    ("no_pet", {"subjects": []}, None, [], r"no sub-\* folders, so no PET scans"),
    ("no_sidecar", {}, lambda r: next(r.glob("sub-01/pet/*rejection_pet.json")).unlink(), [],
     r"rejection_pet\.nii\.gz: no JSON sidecar found.*\n  Add sub-01_task-rejection_pet\.json"),
    ("no_frame_start", {"sidecar": {"FrameTimesStart": ...}}, None, [],
     r"_pet\.json: FrameTimesStart is missing\.\n  Add FrameTimesStart"),
    ("no_frame_duration", {"sidecar": {"FrameDuration": ...}}, None, [],
     r"_pet\.json: FrameDuration is missing"),
    ("frame_count", {}, lambda r: _edit_sidecar(r, FrameTimesStart=[0, 60, 180, 480],
                                                FrameDuration=[60, 120, 300, 360]), [],
     r"rejection_pet\.json: the sidecar gives 4 frames but .*_pet\.nii\.gz has 5"),
    ("image_3d", {}, lambda r: write_image(scan_files(r)[0], np.ones((6, 6, 6))), [],
     r"acceptance_pet\.nii\.gz: the image is 3D with shape \(6, 6, 6\), not 4D"),
    ("zero_duration", {"durations": [60, 0, 300, 360, 360]}, None, [],
     r"_pet\.json: frame 2 has a duration of 0 s.*\n  Give positive FrameDuration"),
    ("negative_duration", {"durations": [60, -120, 300, 360, 360]}, None, [],
     r"frame 2 has a duration of -120 s"),
    ("overlapping", {}, lambda r: _edit_sidecar(r, FrameTimesStart=[0, 30, 180, 480, 840]), [],
     r"rejection_pet\.json: frame 2 starts before the previous frame ends"),
    ("unsorted", {}, lambda r: _edit_sidecar(r, FrameTimesStart=[180, 0, 60, 480, 840]), [],
     r"frame 2 starts before the previous frame \(frames are unsorted"),
    ("unknown_units", {"sidecar": {"Units": "counts"}}, None, [],
     r"_pet\.json: Units is 'counts', which petbp cannot convert"),
    ("units_missing", {"sidecar": {"Units": ...}}, None, [], r"_pet\.json: Units is missing"),
    ("unknown_nuclide", {"decay_corrected": False, "radionuclide": "Xx99"}, None, [],
     r"_pet\.json: unknown radionuclide 'Xx99'.*\n  Set TracerRadionuclide to one of"),
    ("nuclide_missing", {"decay_corrected": False, "sidecar": {"TracerRadionuclide": ...}},
     None, [], r"_pet\.json: TracerRadionuclide is missing or not text, but the image must"),
    ("decay_flag_missing", {"sidecar": {"ImageDecayCorrected": ...}}, None, [],
     r"_pet\.json: ImageDecayCorrected is missing"),
    ("decay_flag_text", {"sidecar": {"ImageDecayCorrected": "maybe"}}, None, [],
     r"ImageDecayCorrected must be true or false; got 'maybe'"),
    ("frames_text", {"sidecar": {"FrameDuration": "60,120"}}, None, [],
     r"FrameDuration must be a non-empty list of finite numbers"),
    ("sidecar_not_json", {}, lambda r: next(r.glob("sub-01/pet/*rejection_pet.json"))
     .write_text("{'Units': 'Bq/mL'}"), [], r"rejection_pet\.json: not valid JSON \(line 1"),
    ("nan_in_brain", {"data": lambda stem, shape: _nan_centre(stem, shape)}, None, [],
     r"_pet\.nii\.gz: NaN or infinite values inside the brain: 1 voxels inside the MNI brain"),
    ("inf", {"data": lambda stem, shape: np.full(shape, np.inf, np.float32)}, None, [],
     r"infinite values"),
    ("participants_missing", {"participants": False}, None, [],
     r"participants\.tsv: participants\.tsv is missing"),
    ("participants_no_id", {"participants": "subject\tage\nsub-01\t3\nsub-02\t4\n"}, None, [],
     r"participants\.tsv: no participant_id column"),
    ("participants_duplicate", {"participants": "participant_id\nsub-01\nsub-01\nsub-02\n"},
     None, [], r"participants listed more than once: \['sub-01'\]"),
    ("participants_row_missing", {"participants": "participant_id\tage\nsub-01\t3\n"}, None, [],
     r"participants\.tsv: no row for sub-02\.\n  Add a row"),
    ("label_selection", {}, None, ["--participant-label", "sub-../../x"],
     r"sub label '\.\./\.\./x' has characters outside \[A-Za-z0-9\]"),
    ("label_in_file_name", {}, lambda r: scan_files(r)[0].rename(
        scan_files(r)[0].with_name("sub-01_task-rej.ection_pet.nii.gz")), [],
     r"task label 'rej\.ection' has characters outside"),
    ("truncated_gzip", {"shape": (24, 24, 24)}, _truncate, [],
     r"_pet\.nii\.gz: the image data cannot be read; the file is truncated or corrupt"),
    ("huge_header", {}, _huge_header, [],
     r"\(4000, 4000, 4000, 5\) need about 2384\.2 GiB"),
    ("native_space", {"affine": np.diag([2.0, 2.0, 2.0, 1.0]) + np.array(
        [[0, 0, 0, 500]] + [[0] * 4] * 3)}, None, [],
     r"_pet\.nii\.gz: the image's field of view covers only 0\.0% of the MNI152 brain"),
    ("duplicate_scan", {}, lambda r: write_image(
        scan_files(r)[0].with_name(scan_files(r)[0].name[:-3]), np.ones((6, 6, 6, 5))), [],
     r"same scan \(sub-01_task-acceptance\) as"),
    ("wrong_folder", {}, lambda r: scan_files(r)[0].rename(
        scan_files(r)[0].with_name("sub-02_task-x_pet.nii.gz")), [],
     r"the file names sub-02 but lies in sub-01/"),
]


@pytest.mark.parametrize("kwargs, breaker, extra, message",
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_check_bad_input(tmp_path, capsys, monkeypatch, kwargs, breaker, extra, message):
    """Each bad input gives exit 1, one message naming the file and fix, and writes nothing."""
    root = make_bids(tmp_path / "bids", **kwargs)
    if breaker:
        breaker(root)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    status, out, err = _run(capsys, root, *extra)
    assert status == 1
    assert "Traceback" not in out + err
    assert "cannot be analysed" in err
    assert __import__("re").search(message, err), err
    assert _snapshot(tmp_path) == before


def test_check_missing_dir(tmp_path, capsys):
    """A BIDS folder that does not exist is named."""
    status, _, err = _run(capsys, tmp_path / "nope")
    assert status == 1
    assert "nope: the BIDS folder does not exist" in err


@pytest.mark.parametrize("text, message", [
    ("demo:\n  subject: 3\n", r"config\.yaml, demo: unknown key 'subject' \(did you mean "
     r"'subjects'\?\)"),
    ("output_dir: [a]\n", r"config\.yaml, output_dir: must be a string"),
])
def test_check_bad_config(tmp_path, capsys, text, message):
    """A misspelt or mistyped config key is named with what is allowed."""
    config = tmp_path / "config.yaml"
    config.write_text(text)
    status, out, err = _run(capsys, make_bids(tmp_path / "bids"), "--config", config)
    assert status == 1
    assert __import__("re").search(message, err), err
    assert "(INVALID)" in out


def test_check_output_inside_bids(tmp_path, capsys):
    """An output_dir inside the dataset is refused with derivatives/petbp suggested."""
    root = make_bids(tmp_path / "bids")
    config = tmp_path / "config.yaml"
    config.write_text(f"output_dir: {root / 'results'}\n")
    status, _, err = _run(capsys, root, "--config", config)
    assert status == 1
    assert "is inside the BIDS dataset" in err and "derivatives/petbp" in err


def test_check_non_numeric_score(tmp_path, capsys, monkeypatch):
    """A score the statistics need that holds text names the participant and value."""
    monkeypatch.setattr(check, "_required_scores", lambda config: (["er89"], ["age"]))
    root = make_bids(tmp_path, participants={"participant_id": ["sub-01", "sub-02"],
                                             "er89": ["40", "high"]})
    status, _, err = _run(capsys, root)
    assert status == 1
    assert "column 'er89' must hold numbers but has sub-02: 'high'" in err
    assert "no covariate column 'age'" in err


def test_check_collects_every_problem(tmp_path, capsys):
    """Problems in several scans are all reported, one block each."""
    root = make_bids(tmp_path, sidecar={"Units": "counts"}, participants=False)
    status, _, err = _run(capsys, root)
    assert status == 1
    assert err.count("which petbp cannot convert") == 4
    assert "5 problem(s) found" in err


def test_check_debug_shows_traceback(tmp_path):
    """--debug raises the first problem instead of collecting it."""
    from pipeline.errors import InputError

    root = make_bids(tmp_path, sidecar={"Units": "counts"})
    with pytest.raises(InputError, match="counts"):
        main(["--debug", "check", str(root)])


def test_check_headers_only_skips_data(tmp_path, capsys):
    """--headers-only does not read image data, so a truncated file passes."""
    root = make_bids(tmp_path, shape=(24, 24, 24))
    _truncate(root)
    status, out, _ = _run(capsys, root, "--headers-only")
    assert status == 0 and "not read (--headers-only)" in out


def test_check_warns_about_late_start_and_gaps(tmp_path, capsys):
    """A late first frame and a long gap are warnings, not problems."""
    root = make_bids(tmp_path, sidecar={"InjectionStart": -600,
                                        "FrameTimesStart": [0, 60, 180, 1080, 1440]})
    status, out, _ = _run(capsys, root)
    assert status == 0
    assert "warning: sub-01_task-rejection: the first frame starts 10 min after" in out
    assert "sub-01_task-rejection: 10 min gap between frames 3 and 4" in out  # 480 s to 1080 s


def test_check_zero_image_and_empty_frame(tmp_path, capsys):
    """An all-zero image is a problem; one all-zero frame is a warning."""
    def data(stem, shape):
        values = np.ones(shape, np.float32)
        values[..., 2] = 0.0
        return values * (0.0 if "rejection" in stem else 1.0)

    status, out, err = _run(capsys, make_bids(tmp_path, data=data))
    assert status == 1
    assert "rejection_pet.nii.gz: the image is zero (or NaN) in every voxel" in err
    assert "warning: sub-01_task-acceptance: frame(s) 3 are zero everywhere" in out


def test_check_prints_each_scans_protocol(tmp_path, capsys, monkeypatch):
    """The summary gives each scan's administration protocol from its sidecar (Kbol)."""
    import pipeline.design

    monkeypatch.undo()  # restore the real _design_summary
    monkeypatch.setattr(pipeline.design, "scan_conditions",
                        lambda config, scan: [f"cond{scan.task}"], raising=False)
    monkeypatch.setattr(pipeline.design, "load_design",
                        lambda config: SimpleNamespace(conditions={}), raising=False)
    protocol = {"ModeOfAdministration": "bolus-infusion", "InjectedRadioactivity": 400,
                "InjectedRadioactivityUnits": "MBq", "InfusionRadioactivity": 200,
                "InjectedVolume": 40, "InfusionSpeed": 20 / 5400, "InfusionSpeedUnits": "mL/s",
                "InfusionStart": 0}
    status, out, _ = _run(capsys, make_bids(tmp_path, sidecar=protocol))
    assert status == 0
    assert "protocol of sub-01_task-rejection: bolus plus infusion, Kbol 90.0 min" in out
