"""Tests of pipeline.bids: scan discovery, sidecar inheritance, participants, image loading."""

from __future__ import annotations

import gzip
import json
import math

import nibabel as nib
import numpy as np
import pytest
from factories import FRAME_DURATIONS_S, make_bids, scan_files, write_image, write_sidecar

from pipeline import bids
from pipeline.errors import InputError
from pipeline.frames import HALF_LIFE_MIN


def test_discover_scans_finds_every_scan_sorted(tmp_path):
    """2 subjects x 2 tasks give 4 scans, sorted by stem, with entities and frames."""
    root = make_bids(tmp_path)
    scans = bids.discover_scans(root)
    assert [s.stem for s in scans] == [
        "sub-01_task-acceptance", "sub-01_task-rejection",
        "sub-02_task-acceptance", "sub-02_task-rejection"]
    scan = scans[0]
    assert scan.rel_dir == "sub-01/pet"
    assert scan.entities == {"sub": "01", "task": "acceptance"}
    assert scan.shape == (6, 6, 6, 5)
    assert scan.frames.end[-1] == pytest.approx(sum(FRAME_DURATIONS_S) / 60)
    assert scan.bq_scale == 1000.0
    assert scan.radionuclide == "C11" and scan.half_life == HALF_LIFE_MIN["C11"]
    assert scan.participant_id == "sub-01"


def test_scan_stem_keeps_bids_entity_order(tmp_path):
    """Sessions and runs appear in the stem and rel_dir in BIDS order."""
    root = make_bids(tmp_path, subjects=["01"], sessions=["1"], tasks=["rest"], runs=["2"])
    (scan,) = bids.discover_scans(root)
    assert scan.stem == "sub-01_ses-1_task-rest_run-2"
    assert scan.rel_dir == "sub-01/ses-1/pet"


@pytest.mark.parametrize("selection, expected", [
    ({"subjects": ["sub-02"]}, ["sub-02_task-acceptance", "sub-02_task-rejection"]),
    ({"subjects": ["01"], "tasks": ["rejection"]}, ["sub-01_task-rejection"]),
    ({"exclude_subjects": ["01"], "exclude_tasks": ["task-acceptance"]},
     ["sub-02_task-rejection"]),
])
def test_discover_scans_selection(tmp_path, selection, expected):
    """Selections keep and drop scans by label, with or without the entity prefix."""
    root = make_bids(tmp_path)
    assert [s.stem for s in bids.discover_scans(root, **selection)] == expected


def test_discover_scans_rejects_path_label(tmp_path):
    """A selected label such as ../../x is refused before it is used in a path."""
    root = make_bids(tmp_path)
    with pytest.raises(InputError, match=r"sub label '\.\./\.\./x' has characters outside"):
        bids.discover_scans(root, subjects=["sub-../../x"])


def test_discover_scans_selection_matching_nothing(tmp_path):
    """A typo in a selected subject names the labels that exist."""
    root = make_bids(tmp_path)
    with pytest.raises(InputError, match=r"selected sub labels \['03'\] match no PET scan"):
        bids.discover_scans(root, subjects=["03"])


def test_excluded_broken_scan_is_not_read(tmp_path):
    """A broken sidecar of an excluded subject does not stop the others."""
    root = make_bids(tmp_path, sidecar=lambda stem: {"Units": "bad"} if "02" in stem else {})
    assert len(bids.discover_scans(root, exclude_subjects=["02"])) == 2


def test_sidecar_inheritance_merges_top_down(tmp_path):
    """Fields from a root-level sidecar apply; the sidecar next to the image wins."""
    root = make_bids(tmp_path, sidecar={"Units": ..., "TracerName": "local"})
    write_sidecar(root / "task-rejection_pet.json", {"Units": "Bq/mL", "TracerName": "top"})
    write_sidecar(root / "pet.json", {"Units": "kBq/mL"})  # not a *_pet.json entity name
    scans = {s.stem: s for s in bids.inspect_scans(root)[0]}
    assert scans["sub-01_task-rejection"].units == "Bq/mL"
    assert scans["sub-01_task-rejection"].tracer == "local"
    _, problems = bids.inspect_scans(root)
    assert len(problems) == 2  # the acceptance scans inherit no Units
    assert all("Units is missing" in str(p) for p in problems)


def test_sidecar_only_inherited(tmp_path):
    """A scan whose only sidecar is at the dataset root is read."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"])
    sidecar = next(root.glob("sub-01/pet/*.json"))
    fields = json.loads(sidecar.read_text())
    sidecar.unlink()
    write_sidecar(root / "task-rest_pet.json", fields)
    (scan,) = bids.discover_scans(root)
    assert scan.sidecar_path == root / "task-rest_pet.json"


def test_injection_start_shifts_frames(tmp_path):
    """Frame times are minutes after injection: InjectionStart is subtracted."""
    starts = [30.0, 90.0, 210.0, 510.0, 870.0]
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"],
                     sidecar={"InjectionStart": 30, "FrameTimesStart": starts})
    (scan,) = bids.discover_scans(root)
    assert scan.frames.start[0] == 0.0
    assert scan.frames.end[-1] == pytest.approx((870 + 360 - 30) / 60)


def test_scans_table_columns(tmp_path):
    """The scan table has one row per scan and the documented columns."""
    table = bids.scans_table(bids.discover_scans(make_bids(tmp_path)))
    assert list(table.columns[:5]) == ["stem", "sub", "ses", "task", "run"]
    assert table["n_frames"].tolist() == [5] * 4
    assert table["end_min"].iloc[0] == pytest.approx(20.0)


def test_read_participants_types(tmp_path):
    """IDs get the sub- prefix; numeric columns become float; n/a is NaN."""
    root = make_bids(tmp_path, participants={
        "participant_id": ["01", "sub-02"], "er89": ["41.5", "n/a"], "sex": ["F", "M"]})
    table = bids.read_participants(root)
    assert table["participant_id"].tolist() == ["sub-01", "sub-02"]
    assert table["er89"].dtype == float and math.isnan(table["er89"].iloc[1])
    score = bids.numeric_score(table, "er89")
    assert score["sub-01"] == 41.5


@pytest.mark.parametrize("text, message", [
    ("id\tage\nsub-01\t3\n", r"no participant_id column"),
    ("participant_id,age\nsub-01,3\n", r"looks comma-separated"),
    ("participant_id\tage\nsub-01\t3\nsub-01\t4\n", r"listed more than once: \['sub-01'\]"),
    ("participant_id\tage\nsub-0_1\t3\n", r"line 2.*characters outside"),
])
def test_read_participants_bad_files(tmp_path, text, message):
    """Broken participants.tsv files name the file and the problem."""
    root = make_bids(tmp_path, participants=text)
    with pytest.raises(InputError, match=r"participants\.tsv.*" + message):
        bids.read_participants(root)


def test_read_participants_missing(tmp_path):
    """A missing participants.tsv says how to make one."""
    root = make_bids(tmp_path, participants=False)
    with pytest.raises(InputError, match=r"participants\.tsv is missing"):
        bids.read_participants(root)


def test_numeric_score_rejects_text(tmp_path):
    """A score that is not a number names the participant and the value."""
    root = make_bids(tmp_path, participants={
        "participant_id": ["sub-01", "sub-02"], "er89": ["40", "high"]})
    table = bids.read_participants(root)
    with pytest.raises(InputError, match=r"'er89' must hold numbers but has sub-02: 'high'"):
        bids.numeric_score(table, "er89", root / "participants.tsv")
    with pytest.raises(InputError, match=r"no column 'bdi'"):
        bids.numeric_score(table, "bdi")


def test_load_pet_converts_units_and_decay(tmp_path):
    """kBq/mL become Bq/mL and uncorrected C-11 data are decay-corrected per frame."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], decay_corrected=False,
                     data=lambda stem, shape: np.ones(shape, np.float32))
    (scan,) = bids.discover_scans(root)
    image = bids.load_pet(scan)
    lam = math.log(2) / 20.364
    t0, t1 = scan.frames.start[-1], scan.frames.end[-1]
    expected = 1000.0 * lam * (t1 - t0) / (math.exp(-lam * t0) - math.exp(-lam * t1))
    assert image.data.dtype == np.float32
    # float32 data: relative error ~1e-7
    assert image.data[0, 0, 0, -1] == pytest.approx(expected, rel=1e-6)
    assert any("decay-corrected on load" in note and "20.364" in note for note in image.notes)
    assert np.asarray(nib.load(str(scan.image_path)).dataobj)[0, 0, 0, -1] == 1.0  # input kept


def test_load_pet_moves_decay_correction_time(tmp_path):
    """Data corrected to 20.364 min (one C-11 half-life) are doubled to refer to injection."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], units="Bq/mL",
                     sidecar={"ImageDecayCorrectionTime": 20.364 * 60},
                     data=lambda stem, shape: np.ones(shape, np.float32))
    image = bids.load_pet(bids.discover_scans(root)[0])
    assert image.data[1, 1, 1, 0] == pytest.approx(2.0, rel=1e-6)  # float32 rounding


def test_load_pet_path_without_root(tmp_path):
    """A path alone finds its sidecar and loads."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], gzip=False)
    image = bids.load_pet(scan_files(root)[0])
    assert image.shape == (6, 6, 6, 5) and image.scan.stem == "sub-01_task-rest"


def test_load_pet_truncated_gzip(tmp_path):
    """A truncated .nii.gz gives an InputError naming the file."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], shape=(20, 20, 20))
    path = scan_files(root)[0]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"_pet\.nii\.gz: the image data cannot be read.*trunc"):
        bids.load_pet(path)


def test_load_pet_memory_check(tmp_path, monkeypatch):
    """A header needing more memory than available is refused before reading data."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"])
    monkeypatch.setattr("pipeline.bids.images.available_memory_bytes", lambda: 1000)
    with pytest.raises(InputError, match=r"need about .* GiB to load, but only"):
        bids.load_pet(bids.discover_scans(root)[0])


def test_load_pet_huge_header(tmp_path):
    """A header claiming 10^12 voxels is refused (dims corrupt) without reading data."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], durations=[60.0])
    path = scan_files(root)[0]
    img = nib.load(str(path))
    header = img.header.copy()
    header.set_data_shape((10000, 10000, 10000, 1))
    with gzip.open(path, "wb") as handle:
        handle.write(header.binaryblock + b"\0" * 4)
    with pytest.raises(InputError, match=r"\(10000, 10000, 10000, 1\) need about"):
        bids.load_pet(path)


def test_load_pet_nan_in_brain(tmp_path):
    """A NaN hole in the brain is an error; NaN at the edge of the field of view is not."""
    def with_nan(where):
        def data(stem, shape):
            values = np.ones(shape, np.float32)
            values[where] = np.nan
            return values
        return data

    corner = make_bids(tmp_path / "a", subjects=["01"], tasks=["rest"],
                       data=with_nan((0, 0, 0)))
    assert bids.load_pet(bids.discover_scans(corner)[0]).data.shape == (6, 6, 6, 5)
    centre = make_bids(tmp_path / "b", subjects=["01"], tasks=["rest"],
                       data=with_nan((3, 3, 2)))  # world (18, 0, 18) mm: inside MNI brain
    with pytest.raises(InputError, match=r"1 voxels inside the MNI brain mask are NaN"):
        bids.load_pet(bids.discover_scans(centre)[0])
    cut = make_bids(tmp_path / "e", subjects=["01"], tasks=["rest"],
                    data=with_nan((slice(None), slice(None), slice(4, None))))
    # brain cut off above z = 72 mm: NaN slices touch the edge, so they are out of the FOV
    assert bids.load_pet(bids.discover_scans(cut)[0]).data.shape == (6, 6, 6, 5)
    partial = make_bids(tmp_path / "c", subjects=["01"], tasks=["rest"],
                        data=with_nan((0, 0, 0, 2)))
    with pytest.raises(InputError, match=r"NaN in some frames only \(frames 3\)"):
        bids.load_pet(bids.discover_scans(partial)[0])
    inf = make_bids(tmp_path / "d", subjects=["01"], tasks=["rest"],
                    data=lambda stem, shape: np.full(shape, np.inf, np.float32))
    with pytest.raises(InputError, match=r"infinite values"):
        bids.load_pet(bids.discover_scans(inf)[0])


def test_read_scan_3d_image(tmp_path):
    """A 3D image is refused with the shape found."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], durations=[600.0])
    path = scan_files(root)[0]
    write_image(path, np.ones((6, 6, 6)))
    with pytest.raises(InputError, match=r"is 3D with shape \(6, 6, 6\), not 4D"):
        bids.read_scan(path)


def test_broken_symlink_says_datalad_get(tmp_path):
    """An image that is a dangling git-annex link says how to fetch its content."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"])
    path = scan_files(root)[0]
    path.unlink()
    path.symlink_to(tmp_path / ".git" / "annex" / "objects" / "missing")
    with pytest.raises(InputError, match=r"_pet\.nii\.gz: is a broken symbolic link.*\n"
                       r"  Run `datalad get"):
        bids.discover_scans(root)


def test_sidecar_with_byte_order_mark(tmp_path):
    """A sidecar saved with a UTF-8 byte-order mark (Windows editors) is read."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"])
    sidecar = next(root.glob("sub-01/pet/*.json"))
    sidecar.write_bytes(b"\xef\xbb\xbf" + sidecar.read_bytes())
    assert bids.discover_scans(root)[0].units == "kBq/mL"


def test_load_pet_never_writes_to_mmapped_input(tmp_path):
    """Unit conversion and decay correction of a memory-mapped .nii leave the file as it was."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], gzip=False,
                     decay_corrected=False)
    path = scan_files(root)[0]
    before = path.read_bytes()
    image = bids.load_pet(path, mmap=True)
    image.data += 1.0
    del image
    assert path.read_bytes() == before


def test_load_pet_correction_time_without_radionuclide(tmp_path):
    """Corrected data referred to another time load unchanged when the nuclide is unknown."""
    root = make_bids(tmp_path, subjects=["01"], tasks=["rest"], units="Bq/mL",
                     sidecar={"ImageDecayCorrectionTime": 600, "TracerRadionuclide": ...},
                     data=lambda stem, shape: np.ones(shape, np.float32))
    image = bids.load_pet(bids.discover_scans(root)[0])
    assert image.data[1, 1, 1, 0] == 1.0
    assert any("radionuclide unknown, so left as is" in note for note in image.notes)
