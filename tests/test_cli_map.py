"""``petbp map`` end to end on a tiny BIDS image, and its error messages."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from factories import make_bids, scan_files, write_image, write_sidecar

from pipeline.cli import main
from pipeline.simulate.compartments import srtm_consistent_tacs

SHAPE = (6, 6, 6)


@pytest.fixture
def dataset(tmp_path, frames_90min):
    """x == 0 holds the reference TAC; other voxels BP_ND 1.5; reference mask file."""
    _ref, tacs = srtm_consistent_tacs(frames_90min, [0.0, 1.5], k2prime=0.12)
    data = np.empty((*SHAPE, frames_90min.n_frames), np.float32)
    data[:] = tacs[:, 1]
    data[0] = tacs[:, 0]
    root = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"], shape=SHAPE,
                     durations=list(frames_90min.duration * 60), units="Bq/mL",
                     data=lambda stem, shape: data)
    mask = np.zeros(SHAPE, np.float32)
    mask[0] = 1
    return scan_files(root)[0], write_image(tmp_path / "ref.nii.gz", mask)


def test_map_writes_bpnd_r1_and_sidecar(tmp_path, dataset, capsys):
    """MRTM2 with --k2prime, --window and --weights writes the maps; BP 1.5 within 0.5 %."""
    pet, ref = dataset
    out = tmp_path / "maps" / "sub-01"
    status = main(["map", str(pet), "--reference-mask", str(ref), "--model", "mrtm2",
                   "--k2prime", "0.12", "--window", "0", "90", "--weights", "duration",
                   "-o", str(out)])
    assert status == 0
    bpnd = np.asarray(nib.load(f"{out}_bpnd.nii.gz").dataobj)
    assert np.nanmedian(bpnd[1:]) == pytest.approx(1.5, rel=0.005)  # frame integration
    assert (tmp_path / "maps" / "sub-01_r1.nii.gz").is_file()
    sidecar = json.loads((tmp_path / "maps" / "sub-01_bpnd.json").read_text())
    assert sidecar["options"]["window"] == [0.0, 90.0]
    assert sidecar["options"]["weights"] == "duration"
    assert "sub-01_bpnd.nii.gz" in capsys.readouterr().out


def test_map_logan_with_tstar_has_no_r1(tmp_path, dataset):
    """--tstar reaches the model; Logan writes no R1 map."""
    pet, ref = dataset
    out = tmp_path / "logan"
    assert main(["map", str(pet), "--reference-mask", str(ref), "--model", "logan_ref",
                 "--tstar", "20", "--k2prime", "0.12", "-o", str(out)]) == 0
    assert json.loads((tmp_path / "logan_bpnd.json").read_text())["options"]["t_star"] == 20
    assert not (tmp_path / "logan_r1.nii.gz").exists()


def test_map_empty_reference_mask_exit_1(tmp_path, dataset, capsys):
    """An empty reference mask: exit status 1 and a message naming the mask, no traceback."""
    pet, _ = dataset
    empty = write_image(tmp_path / "none.nii.gz", np.zeros(SHAPE))
    status = main(["map", str(pet), "--reference-mask", str(empty), "--model", "mrtm",
                   "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 1
    assert "none.nii.gz: the reference mask is empty" in err and "Traceback" not in err
    assert not list(tmp_path.glob("x_*"))


def test_map_tstar_past_scan_end_exit_1(tmp_path, dataset, capsys):
    """t* past the last frame is reported, not crashed on."""
    pet, ref = dataset
    status = main(["map", str(pet), "--reference-mask", str(ref), "--model", "mrtm",
                   "--tstar", "200", "-o", str(tmp_path / "x")])
    assert status == 1
    assert "t* = 200 min is at or past the last frame" in capsys.readouterr().err


def test_map_option_the_model_does_not_take(tmp_path, dataset, capsys):
    """--tstar with basis-function SRTM (which has no t*) is refused by name (exit 1)."""
    pet, ref = dataset
    status = main(["map", str(pet), "--reference-mask", str(ref), "--model", "srtm_bf",
                   "--tstar", "10", "-o", str(tmp_path / "x")])
    assert status == 1
    assert "does not take option(s) t_star" in capsys.readouterr().err


@pytest.fixture
def plain_image(tmp_path, dataset):
    """The dataset's image and sidecar copied to a folder without BIDS names."""
    pet, ref = dataset
    folder = tmp_path / "plain"
    folder.mkdir()
    image = folder / "pet.nii.gz"
    image.write_bytes(pet.read_bytes())
    sidecar = json.loads(pet.with_name(pet.name.replace(".nii.gz", ".json")).read_text())
    return image, sidecar, ref


def test_map_accepts_any_name_with_a_same_stem_sidecar(tmp_path, plain_image):
    """pet.nii.gz + pet.json (no BIDS names) is mapped like the BIDS scan: BP 1.5 +- 0.5 %."""
    image, sidecar, ref = plain_image
    write_sidecar(image.with_name("pet.json"), sidecar)
    out = tmp_path / "maps" / "plain"
    assert main(["map", str(image), "--reference-mask", str(ref), "--model", "mrtm2",
                 "--k2prime", "0.12", "-o", str(out)]) == 0
    bpnd = np.asarray(nib.load(f"{out}_bpnd.nii.gz").dataobj)
    assert np.nanmedian(bpnd[1:]) == pytest.approx(1.5, rel=0.005)  # frame integration
    written = json.loads((tmp_path / "maps" / "plain_bpnd.json").read_text())
    assert written["inputs"]["sidecar"] == str(image.with_name("pet.json"))


def test_map_takes_the_sidecar_option(tmp_path, plain_image):
    """--sidecar FILE gives the timing of an image whose sidecar has another name."""
    image, sidecar, ref = plain_image
    other = write_sidecar(tmp_path / "timing.json", sidecar)
    out = tmp_path / "s"
    assert main(["map", str(image), "--sidecar", str(other), "--reference-mask", str(ref),
                 "--model", "logan_ref", "--k2prime", "0.12", "-o", str(out)]) == 0
    bpnd = np.asarray(nib.load(f"{out}_bpnd.nii.gz").dataobj)
    assert np.nanmedian(bpnd[1:]) == pytest.approx(1.5, rel=0.005)


def test_map_missing_sidecar_names_the_file_and_the_option(tmp_path, plain_image, capsys):
    """Without pet.json and without --sidecar: exit 1, the expected path and --sidecar."""
    image, _, ref = plain_image
    status = main(["map", str(image), "--reference-mask", str(ref), "--model", "mrtm",
                   "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert f"{image.with_name('pet.json')}: JSON sidecar not found" in err
    assert "--sidecar FILE" in err
    assert not list(tmp_path.glob("x_*"))


def test_map_sidecar_problem_names_the_users_file(tmp_path, plain_image, capsys):
    """A sidecar with too few frames is reported with the user's file names."""
    image, sidecar, ref = plain_image
    sidecar["FrameDuration"] = sidecar["FrameDuration"][:-1]
    sidecar["FrameTimesStart"] = sidecar["FrameTimesStart"][:-1]
    side = write_sidecar(tmp_path / "short.json", sidecar)
    status = main(["map", str(image), "--sidecar", str(side), "--reference-mask", str(ref),
                   "--model", "mrtm", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{side}: the sidecar gives 27 frames but pet.nii.gz has 28" in err
    assert "sub-x" not in err


def test_map_refuses_a_file_that_is_not_nifti(tmp_path, dataset, capsys):
    """An image path that is not .nii or .nii.gz is refused by name."""
    _, ref = dataset
    bad = tmp_path / "pet.img"
    bad.write_bytes(b"x")
    assert main(["map", str(bad), "--reference-mask", str(ref), "--model", "mrtm",
                 "-o", str(tmp_path / "x")]) == 1
    assert "pet.img: not a NIfTI image" in capsys.readouterr().err
