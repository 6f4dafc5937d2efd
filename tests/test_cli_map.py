"""``petbp map`` end to end on a tiny BIDS image, and its error messages."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from factories import make_bids, scan_files, write_image

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
