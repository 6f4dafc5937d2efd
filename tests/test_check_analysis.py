"""``petbp check`` against what the configured analysis asks of each scan.

Each test builds one small malformed dataset with the factories (a 9 mm grid over the MNI
brain, a 28-frame 90-min schedule, two 30 mm sphere regions) and checks that ``petbp check``
exits 1 with one message naming the file, what is wrong and the fix, and writes nothing.
The first test is the control: the same dataset unbroken passes.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import yaml
from factories import make_bids, scan_files

from pipeline.cli import main

# the toy images carry no anatomy: taken as MNI (space detection: test_space_detect.py)
pytestmark = pytest.mark.usefixtures("toy_images_in_mni")

#: 9 mm voxels from (-90, -126, -72) mm: the MNI brain with a margin.
AFFINE = np.array([[9.0, 0, 0, -90], [0, 9.0, 0, -126], [0, 0, 9.0, -72], [0, 0, 0, 1]])
SHAPE = (21, 25, 21)
#: 6x0.5, 5x1, 5x2, 4x3, 4x5, 4x10 min, seconds: 28 frames over 90 min.
DURATIONS_S = [30] * 6 + [60] * 5 + [120] * 5 + [180] * 4 + [300] * 4 + [600] * 4
REF_CENTER, TARGET_CENTER = (0.0, -80.0, 10.0), (0.0, 10.0, 10.0)


def _voxel_mm() -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    return ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]


def _sphere(center, radius=30.0) -> np.ndarray:
    return np.linalg.norm(_voxel_mm() - np.asarray(center), axis=-1) <= radius


def _data(zero=None, nan=None):
    """A rising TAC in every voxel; ``zero``/``nan``: a sphere centre to blank."""
    def make(stem, shape):
        values = np.ones(shape, np.float32) * np.linspace(1, 2, shape[-1], dtype=np.float32)
        if zero is not None:
            values[_sphere(zero)] = 0.0
        if nan is not None:
            values[_sphere(nan)] = np.nan
        return values
    return make


def _setup(tmp_path, *, design=None, models=None, k2prime=None, **bids_args):
    """Dataset, region config and workflow config; returns (bids root, config path)."""
    regions = tmp_path / "regions.yaml"
    regions.write_text(yaml.safe_dump({
        "name": "spheres", "reference": "ref", "min_reference_voxels": 10,
        "regions": {"ref": {"sphere": {"center": list(REF_CENTER), "radius": 30}},
                    "target": {"sphere": {"center": list(TARGET_CENTER), "radius": 30}}}}))
    config = {
        "regions": str(regions), "output_dir": str(tmp_path / "out"),
        "design": design or {
            "conditions": {"base": {"task": "rest", "window": [5, 45]},
                           "late": {"task": "rest", "window": [45, 90]}},
            "contrasts": {"late": {"baseline": "base", "condition": "late"}}},
        "models": models or {"logan_ref": {"t_star": 10, "k2prime": "shared"},
                             "mrtm2": {"k2prime": "shared"}},
        "primary_model": next(iter(models or {"logan_ref": 0})),
        "k2prime": k2prime or {"model": "srtm", "regions": ["target"], "window": [0, 45]},
        "statistics": {"correlations": []},
        "voxelwise": {"enabled": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    args = {"subjects": ["01"], "tasks": ["rest"], "shape": SHAPE, "affine": AFFINE,
            "durations": DURATIONS_S, "data": _data(), **bids_args}
    return make_bids(tmp_path / "bids", **args), path


def _check(capsys, root, config):
    before = sorted(p for p in root.parent.rglob("*"))
    status = main(["check", str(root), "--config", str(config)])
    out, err = capsys.readouterr()
    assert sorted(p for p in root.parent.rglob("*")) == before  # nothing written
    assert "Traceback" not in err
    return status, out, err


def test_control_dataset_passes(tmp_path, capsys):
    """The unbroken dataset passes and says which images are read."""
    root, config = _setup(tmp_path)
    status, out, err = _check(capsys, root, config)
    assert status == 0, err
    assert "images: the raw *_pet.nii[.gz] of the BIDS dataset" in out


def test_reference_without_signal(tmp_path, capsys):
    """A reference region with zero signal (outside the field of view) is an error."""
    root, config = _setup(tmp_path, data=_data(zero=REF_CENTER))
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "sub-01_task-rest_pet.nii.gz: the reference region 'ref' has signal in 0%" in err
    assert "petbp regions --image" in err


def test_target_region_zero(tmp_path, capsys):
    """A target region whose voxels are all zero is an error naming the region."""
    root, config = _setup(tmp_path, data=_data(zero=TARGET_CENTER))
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "region 'target' has signal in 0% of its voxels" in err


def test_region_nan(tmp_path, capsys):
    """NaN in a region's voxels is an error naming the image (found when it is loaded)."""
    root, config = _setup(tmp_path, data=_data(nan=TARGET_CENTER))
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "sub-01_task-rest_pet.nii.gz" in err and "NaN" in err


def test_window_past_the_end_of_the_scan(tmp_path, capsys):
    """A 60-min scan cannot hold the 45-90 min window."""
    root, config = _setup(tmp_path, durations=[*DURATIONS_S[:24], 300, 300])
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "condition 'late' uses minutes 45-90, outside the acquisition of sub-01_task-rest " \
        "(0-60 min)" in err
    assert "design.conditions.late.window" in err


def test_too_few_frames_after_t_star(tmp_path, capsys):
    """Logan with t* 80 min has 1 frame in the 45-90 min window; it needs 3."""
    root, config = _setup(tmp_path, models={"logan_ref": {"t_star": 80, "k2prime": 0.1}})
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "condition 'late' (45-90 min) holds 1 frame(s) of sub-01_task-rest at or after " \
        "t* = 80 min; logan_ref needs at least 3" in err
    assert "lower the model's t_star" in err


def test_first_frame_too_late_for_integrating_models(tmp_path, capsys):
    """Injection 10 min before the first frame: MRTM2 and Logan cannot integrate from it."""
    root, config = _setup(tmp_path, sidecar={"InjectionStart": -600})
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "the first frame of sub-01_task-rest starts 10 min after injection" in err
    assert "logan_ref, mrtm2 integrate the TACs from injection" in err


def test_ratio_alone_accepts_a_late_start(tmp_path, capsys):
    """The equilibrium ratio does not integrate: a late start is no problem for it."""
    root, config = _setup(tmp_path, sidecar={"InjectionStart": -600},
                          models={"ratio": {}}, k2prime=None, design={
                              "conditions": {"base": {"task": "rest", "window": [15, 45]},
                                             "late": {"task": "rest", "window": [45, 90]}},
                              "contrasts": {"late": {"baseline": "base", "condition": "late"}}})
    status, _, err = _check(capsys, root, config)
    assert status == 0, err


def test_long_gap_between_frames(tmp_path, capsys):
    """A 20-min gap is beyond what the models' integrals are validated for (10 min)."""
    starts = np.concatenate([[0.0], np.cumsum(DURATIONS_S)[:-1]])
    starts[20:] += 1200  # frames 21-28 start 20 min later
    root, config = _setup(tmp_path, sidecar={"FrameTimesStart": starts.tolist()},
                          design={"conditions": {"base": {"task": "rest", "window": [5, 45]},
                                                 "late": {"task": "rest",
                                                          "window": [45, 110]}},
                                  "contrasts": {"late": {"baseline": "base",
                                                         "condition": "late"}}})
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "20 min gap between frames 20 and 21 of sub-01_task-rest" in err


def test_overlapping_frames(tmp_path, capsys):
    """Frames that overlap are an error naming the sidecar."""
    starts = np.concatenate([[0.0], np.cumsum(DURATIONS_S)[:-1]])
    starts[10] -= 30
    root, config = _setup(tmp_path, sidecar={"FrameTimesStart": starts.tolist()})
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "sub-01_task-rest_pet.json" in err and "overlap" in err


def test_k2prime_window_with_too_few_frames(tmp_path, capsys):
    """The shared k2' window must hold enough frames for its first-pass model."""
    root, config = _setup(tmp_path, k2prime={"model": "srtm", "regions": ["target"],
                                             "window": [0, 1]})
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "the shared k2' window [0, 1] holds 2 frame(s) of sub-01_task-rest; srtm needs " \
        "at least 4" in err


def _rewrite_header(root, change):
    path = scan_files(root)[0]
    image = nib.load(path)
    data = np.asarray(image.dataobj)
    new = nib.Nifti1Image(data, image.affine)
    change(new)
    nib.save(new, path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda img: img.set_qform(img.affine @ np.diag([-1.0, 1, 1, 1]) + np.diag([0, 0, 0, 0]),
                               code=1),
     "sform and qform disagree on left and right"),
    (lambda img: img.set_qform(img.affine + np.array([[0, 0, 0, 4.0], [0] * 4, [0] * 4,
                                                      [0] * 4]), code=1),
     "sform and qform disagree (by up to 4 mm)"),
    (lambda img: (img.set_qform(None, code=0), img.set_sform(None, code=0)),
     "the header has no orientation"),
], ids=["left-right-flip", "shifted", "no-orientation"])
def test_orientation_fields(tmp_path, capsys, change, message):
    """sform and qform must agree, and at least one must be set."""
    root, config = _setup(tmp_path)
    _rewrite_header(root, change)
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert f"sub-01_task-rest_pet.nii.gz: {message}" in err


def test_region_empty_on_a_coarse_grid_names_the_image(tmp_path, capsys):
    """A region that has no voxel on the image's grid is an error naming image and region."""
    coarse = np.array([[36.0, 0, 0, -90], [0, 36.0, 0, -126], [0, 0, 36.0, -72], [0, 0, 0, 1]])
    root, config = _setup(tmp_path, shape=(6, 7, 6), affine=coarse)
    settings = yaml.safe_load(config.read_text())
    regions = yaml.safe_load(open(settings["regions"]).read())
    regions["regions"]["target"]["sphere"]["radius"] = 5  # smaller than one 36 mm voxel
    (tmp_path / "regions.yaml").write_text(yaml.safe_dump(regions))
    status, _, err = _check(capsys, root, config)
    assert status == 1
    assert "sub-01_task-rest_pet.nii.gz: the regions cannot be built on this image's grid" in err
    assert "'target'" in err
