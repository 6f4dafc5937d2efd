"""Space detection from the data, and the per-scan preprocessing plan (auto/on/off)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from preprocess_helpers import move

from pipeline.errors import ConfigError, InputError
from pipeline.preprocess.plan import find_t1w, image_space, plan_scan
from pipeline.preprocess.rigid import matrix_from_params
from pipeline.space_detection import MNI_MAX_SHIFT_MM, MNI_MIN_CORRELATION, detect_space


def test_mni_image_is_mni(brain4):
    """A brain-like image on its MNI place is 'mni', confidently, whatever its xform code."""
    volume, affine = brain4
    evidence = detect_space(volume, affine, shape=volume.shape, sform_code=1)
    assert evidence.space == "mni" and evidence.confident
    assert evidence.correlation > 0.95 and evidence.best_shift_mm <= 4.0


@pytest.mark.parametrize("params", [[20.0, 0, 0, 0, 0, 0], [0, 25.0, 10.0, 0, 0, 0],
                                    [0, 0, 0, 0.35, 0, 0], [5.0, -10.0, 15.0, 0.1, 0.1, 0.1]])
def test_moved_image_is_scanner(brain4, params):
    """The same image 20+ mm away or rotated 20 deg is 'scanner', with the evidence; a
    header claiming MNI (code 4) is named as contradicted."""
    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params(params, [0.0, -18.0, 18.0]))
    evidence = detect_space(moved, affine, shape=moved.shape, sform_code=4, qform_code=4)
    assert evidence.space == "scanner"
    assert (evidence.correlation < MNI_MIN_CORRELATION or evidence.best_rotation_deg > 0 or
            evidence.best_shift_mm > MNI_MAX_SHIFT_MM)
    assert any("header says MNI" in r for r in evidence.reasons)
    assert "scanner space" in evidence.describe()


def test_space_entity_naming_another_space_wins(brain4):
    """space-T1w is never analysed as MNI, even if it happens to match."""
    volume, affine = brain4
    evidence = detect_space(volume, affine, shape=volume.shape, bids_space="T1w")
    assert evidence.space == "scanner"
    assert detect_space(volume, affine, shape=volume.shape,
                        bids_space="MNI152NLin2009cAsym").space == "mni"


def _write_scan(root: Path, data: np.ndarray, affine: np.ndarray, t1: bool) -> Path:
    pet = root / "sub-01" / "pet" / "sub-01_task-x_pet.nii.gz"
    pet.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.stack([data, data], -1), affine), str(pet))
    if t1:
        (root / "sub-01" / "anat").mkdir()
        nib.save(nib.Nifti1Image(data, affine), str(root / "sub-01" / "anat" /
                                                    "sub-01_T1w.nii.gz"))
    return pet


def test_plan_modes(tmp_path, brain4):
    """auto: scanner scans preprocessed, MNI scans as is; off refuses scanner space saying
    what to do; on preprocesses everything; a missing T1w is named."""
    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params([25.0, 0, 10.0, 0.2, 0, 0]))
    scanner = _write_scan(tmp_path / "a", moved, affine, t1=True)
    mni = _write_scan(tmp_path / "b", volume, affine, t1=False)
    assert image_space(scanner).space == "scanner"
    assert find_t1w(scanner).name == "sub-01_T1w.nii.gz"
    plan = plan_scan(scanner, "auto")
    assert plan.preprocess and "motion correction" in plan.summary
    assert not plan_scan(mni, "auto").preprocess
    assert "analysed as is" in plan_scan(mni, "off").summary
    with pytest.raises(InputError, match=r"scanner \(native\) space.*\n.*preprocessing: auto"):
        plan_scan(scanner, "off")
    with pytest.raises(InputError, match="needs the subject's T1w"):
        plan_scan(mni, "on")
    with pytest.raises(ConfigError, match="auto, on, off"):
        plan_scan(mni, "yes")


def test_write_scan_plan(tmp_path, brain4):
    """The plan file records the space, the decision and the evidence."""
    import json

    from pipeline.preprocess.plan import write_scan_plan

    volume, affine = brain4
    scanner = _write_scan(tmp_path / "a", move(volume, affine, matrix_from_params(
        [25.0, 0, 10.0, 0.2, 0, 0])), affine, t1=True)
    write_scan_plan(scanner, "auto", tmp_path / "plan.json")
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["Space"] == "scanner" and plan["Preprocess"] is True
    assert plan["T1w"].endswith("sub-01_T1w.nii.gz") and plan["Reasons"]


def test_cached_space_is_reused_until_the_image_changes(tmp_path, brain4, monkeypatch):
    """The workflow keeps each scan's evidence: the second parse reads it; a rewritten image
    (new size or modification time) is detected again; no cache path detects every time."""
    import os

    from pipeline.preprocess import plan

    volume, affine = brain4
    pet = _write_scan(tmp_path / "a", volume, affine, t1=False)
    calls = []
    real = plan.image_space
    monkeypatch.setattr(plan, "image_space", lambda p: calls.append(p) or real(p))
    cache = tmp_path / "plans" / "scan.json"
    first = plan.cached_image_space(pet, cache)
    assert first.space == "mni" and cache.is_file() and len(calls) == 1
    assert plan.cached_image_space(pet, cache) == first and len(calls) == 1
    moved = move(volume, affine, matrix_from_params([25.0, 0, 10.0, 0.2, 0, 0]))
    nib.save(nib.Nifti1Image(np.stack([moved, moved], -1), affine), str(pet))
    os.utime(pet, ns=(1, 1))  # a different modification time whatever the clock
    assert plan.cached_image_space(pet, cache).space == "scanner" and len(calls) == 2
    plan.cached_image_space(pet, None)
    assert len(calls) == 3


def test_spaces_of_many_images_in_threads_are_those_of_one_at_a_time(tmp_path, brain4):
    """Two threads give each image the evidence it gets alone, in the images' order, and an
    unreadable image's error in its place (the workflow lists every refused scan)."""
    from pipeline.preprocess import plan

    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params([25.0, 0, 10.0, 0.2, 0, 0]))
    images = [_write_scan(tmp_path / "mni", volume, affine, t1=False),
              _write_scan(tmp_path / "moved", moved, affine, t1=False)]
    broken = tmp_path / "broken_pet.nii.gz"
    broken.write_bytes(b"not an image")
    found = plan.cached_image_spaces([images[0], broken, images[1]], tmp_path / "cache",
                                     workers=2)
    assert [getattr(f, "space", None) for f in found] == ["mni", None, "scanner"]
    assert isinstance(found[1], InputError) and "broken_pet.nii.gz" in str(found[1])
    # repr: the evidence holds NaN (no rotation tried), which equals nothing
    assert repr(found[0]) == repr(plan.image_space(images[0]))
    assert repr(found[2]) == repr(plan.image_space(images[1]))
    # the evidence was kept: a second call (one thread) reads the same from the cache
    assert repr(plan.cached_image_spaces(images, tmp_path / "cache", workers=1)) == \
        repr([found[0], found[2]])


def test_many_images_detect_only_those_not_kept(tmp_path, brain4, monkeypatch):
    """Evidence kept for unchanged images is looked up before any thread starts; only a
    rewritten image is detected again, and every result stays in the images' order."""
    import os

    from pipeline.preprocess import plan

    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params([25.0, 0, 10.0, 0.2, 0, 0]))
    images = [_write_scan(tmp_path / name, volume, affine, t1=False) for name in "abc"]
    first = plan.cached_image_spaces(images, tmp_path / "cache", workers=2)
    calls = []
    real = plan._image_space
    monkeypatch.setattr(plan, "_image_space",  # every detection (image_space calls it)
                        lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    assert repr(plan.cached_image_spaces(images, tmp_path / "cache", workers=2)) == repr(first)
    assert calls == []
    nib.save(nib.Nifti1Image(np.stack([moved, moved], -1), affine), str(images[1]))
    os.utime(images[1], ns=(1, 1))  # a different modification time whatever the clock
    again = plan.cached_image_spaces(images, tmp_path / "cache", workers=2)
    assert [e.space for e in again] == ["mni", "scanner", "mni"]
    assert [Path(c) for c in calls] == [images[1]]


def test_yaml_on_off_mean_the_words():
    """YAML 1.1 reads unquoted on/off as booleans: preprocessing: off means 'off'."""
    from pipeline.config import validate_config

    for value, word in ((False, "off"), (True, "on"), ("auto", "auto")):
        config = {"preprocessing": value}
        assert validate_config(config)["preprocessing"] == word
    with pytest.raises(ConfigError, match="preprocessing"):
        validate_config({"preprocessing": "sometimes"})


def test_infinite_values_are_refused_nan_is_not(tmp_path, brain4):
    """An image with an infinity is refused, naming the file and the count (it would otherwise
    look like scanner space); a NaN (common outside the brain) is read as 0 and decides
    nothing."""
    volume, affine = brain4
    bad = volume.copy()
    bad[tuple(s // 2 for s in bad.shape[:3])] = np.inf  # one voxel, in both frames
    path = _write_scan(tmp_path / "inf", bad, affine, t1=False)
    with pytest.raises(InputError, match=r"_pet\.nii\.gz: the image holds 2 infinite values"):
        image_space(path)
    holey = volume.copy()
    holey[0, 0, 0] = np.nan
    assert image_space(_write_scan(tmp_path / "nan", holey, affine, t1=False)).space == "mni"


def _write_int16(path: Path, volume: np.ndarray, affine: np.ndarray, *, code: int,
                 frames: int = 3) -> Path:
    """A 4D int16 image with a slope and an intercept (as scanners write them), the volume
    in every frame times 1, 2, 3, with sform/qform ``code``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.stack([volume * (k + 1) for k in range(frames)], -1).astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(np.int16)
    img.header.set_slope_inter(float(data.max()) / 30000.0, 0.5)
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    nib.save(img, str(path))
    return path


def test_scanner_image_claiming_mni_everywhere_is_caught(tmp_path, brain4):
    """A scanner-space image whose header codes say MNI (4) and whose name says
    space-MNI152NLin2009cAsym is still scanner: the data decide. Its placement already fails
    the correlation/shift test, so no rotation is searched (NaN, 'not searched')."""
    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params([25.0, 0, 10.0, 0.2, 0, 0]))
    path = _write_int16(tmp_path / "sub-01" / "pet" /
                        "sub-01_task-x_space-MNI152NLin2009cAsym_pet.nii.gz", moved, affine,
                        code=4)
    evidence = image_space(path)
    assert evidence.space == "scanner"
    assert evidence.sform_code == evidence.qform_code == 4
    assert evidence.bids_space == "MNI152NLin2009cAsym"
    assert any("header says MNI" in r for r in evidence.reasons)
    assert np.isnan(evidence.best_rotation_deg)
    assert "best rotation not searched" in evidence.describe()


def test_integer_time_mean_equals_the_float_mean(tmp_path, brain4):
    """The time mean taken in the stored integers and scaled once equals nibabel's scaled
    float data averaged over frames (to float32 rounding), and so does the evidence."""
    from pipeline.preprocess.plan import _time_mean

    volume, affine = brain4
    path = _write_int16(tmp_path / "a_pet.nii.gz", volume, affine, code=1)
    img, _, mean, n_inf = _time_mean(path)
    expected = np.asarray(nib.load(str(path)).dataobj, np.float64).mean(axis=3)
    assert n_inf == 0 and mean.dtype == np.float32
    # float32 rounding of values up to ~3x the volume's maximum
    assert np.allclose(mean, expected, rtol=1e-6, atol=1e-6 * float(np.abs(expected).max()))
    fast = image_space(path)
    slow = detect_space(expected, affine, shape=img.shape, sform_code=1, qform_code=1)
    assert fast.space == slow.space == "mni"
    assert fast.correlation == pytest.approx(slow.correlation, abs=1e-5)


@pytest.mark.parametrize("params", [[0, 0, 0, 0, 0, 0], [3.0, -2.0, 0, 0, 0, 0],
                                    [0, 0, 0, 0.35, 0, 0], [0, 0, 0, 0, 0, 0.2],
                                    [20.0, 0, 0, 0, 0, 0], [5.0, -10.0, 15.0, 0.1, 0.1, 0.1]])
def test_skipping_rotations_never_changes_the_decision(brain4, params):
    """detect_space searches rotations only when the header's placement passes the
    correlation and shift tests; its decision equals the full search's on MNI, shifted and
    rotated images (a rotation alone, which only the search can catch, still is caught)."""
    from pipeline.space_detection import MNI_MAX_ROTATION_DEG, template_match

    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params(params, [0.0, -18.0, 18.0]))
    correlation, shift, rotation = template_match(moved, affine, rotations=True)
    full = ("mni" if correlation >= MNI_MIN_CORRELATION and shift <= MNI_MAX_SHIFT_MM
            and rotation <= MNI_MAX_ROTATION_DEG else "scanner")
    evidence = detect_space(moved, affine, shape=moved.shape)
    assert evidence.space == full
    searched = np.isfinite(evidence.best_rotation_deg)
    assert searched == (correlation >= MNI_MIN_CORRELATION and shift <= MNI_MAX_SHIFT_MM)
    if searched:
        assert evidence.best_rotation_deg == rotation


def test_space_cache_is_per_image_and_optional(tmp_path, brain4):
    """One cache file per image (by its resolved path); a cache folder that cannot be
    written costs only the detection."""
    from pipeline.preprocess.plan import cached_image_space, space_cache_path

    volume, affine = brain4
    a = _write_scan(tmp_path / "a", volume, affine, t1=False)
    b = _write_scan(tmp_path / "b", volume, affine, t1=False)
    assert space_cache_path(a, tmp_path / "c") != space_cache_path(b, tmp_path / "c")
    assert space_cache_path(a, tmp_path / "c") == space_cache_path(
        tmp_path / "a" / "sub-01" / ".." / "sub-01" / "pet" / a.name, tmp_path / "c")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    evidence = cached_image_space(a, space_cache_path(a, blocked))
    assert evidence.space == "mni"


def _study_for_parse(root: Path, brain4, dtype: str) -> list:
    """sub-01: the brain on its MNI place; sub-02: moved 25 mm (scanner space); both in
    kBq/mL without decay correction (loading converts and corrects), 5 frames, stored as
    ``dtype`` (int16: with a slope and an intercept)."""
    from factories import make_bids

    from pipeline.bids import read_scan

    volume, affine = brain4
    moved = move(volume, affine, matrix_from_params([25.0, 0, 10.0, 0.2, 0, 0]))
    tac = np.array([1.0, 2.0, 3.0, 2.5, 2.0], np.float32)
    make_bids(root, subjects=["01", "02"], tasks=["x"], shape=volume.shape, affine=affine,
              units="kBq/mL", decay_corrected=False,
              data=lambda stem, shape: (volume if "sub-01" in stem else moved)[..., None] * tac)
    paths = sorted(root.glob("sub-*/pet/*_pet.nii.gz"))
    if dtype == "int16":
        for path, image in zip(paths, (volume, moved), strict=True):
            img = nib.Nifti1Image(image[..., None] * tac, affine)
            img.set_data_dtype(np.int16)
            img.header.set_slope_inter(float(image.max()) * 3.0 / 30000.0, 0.25)
            nib.save(img, str(path))
    return [read_scan(path) for path in paths]


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_parse_stores_scans_analysed_as_is_for_their_tac_step(tmp_path, brain4, dtype,
                                                               monkeypatch):
    """The workflow's first parse decodes each image to detect its space; with a loaded-image
    cache it stores the scans found in MNI space there, as load_pet gives them (bit for bit,
    the same notes), so the TAC step reads the copy without decoding; a scanner-space scan
    (preprocessed, never read as is) is not stored. The evidence is the one image_space
    gives, and a second parse (evidence kept) neither decodes nor rewrites."""
    import pipeline.bids.image_cache as image_cache
    from pipeline.bids import load_pet
    from pipeline.bids.image_cache import cache_key, load_cached_pet
    from pipeline.preprocess import plan

    scans = _study_for_parse(tmp_path / "bids", brain4, dtype)
    loaded = tmp_path / "pet_cache"
    found = plan.cached_image_spaces(scans, tmp_path / "space", workers=2, loaded_cache=loaded)
    assert [f.space for f in found] == ["mni", "scanner"]
    for scan, evidence in zip(scans, found, strict=True):
        assert repr(evidence) == repr(plan.image_space(scan.image_path))
    copy = loaded / f"{cache_key(scans[0])}.npy"
    assert copy.is_file()
    assert sorted(p.name for p in loaded.iterdir()) == sorted(
        [copy.name, copy.with_suffix(".json").name])  # the scanner-space scan: not stored
    reads = []
    monkeypatch.setattr(image_cache, "load_pet", lambda s: reads.append(s) or load_pet(s))
    cached, direct = load_cached_pet(scans[0], loaded), load_pet(scans[0])
    assert reads == []  # the TAC step maps the parse's copy
    np.testing.assert_array_equal(cached.data, direct.data)
    assert cached.data.dtype == np.float32 and cached.notes == direct.notes
    assert any("decay-corrected on load" in note for note in direct.notes)
    np.testing.assert_array_equal(cached.affine, direct.affine)
    stamp = copy.stat().st_mtime_ns
    monkeypatch.setattr(plan, "_time_mean", lambda path: pytest.fail("decoded again"))
    again = plan.cached_image_spaces(scans, tmp_path / "space", loaded_cache=loaded)
    assert repr(again) == repr(found) and copy.stat().st_mtime_ns == stamp


def test_parse_leaves_an_image_load_pet_refuses_to_its_step(tmp_path, brain4):
    """A scan whose image load_pet refuses (here: 5 frames in the sidecar, 3 in the image) is
    detected as before but not stored: its TAC step reads it and reports the problem; a
    cache folder that cannot be written costs nothing but the copy."""
    from pipeline.bids import load_pet
    from pipeline.bids.image_cache import store_decoded
    from pipeline.preprocess import plan

    scans = _study_for_parse(tmp_path / "bids", brain4, "float32")
    volume, affine = brain4
    nib.save(nib.Nifti1Image(np.stack([volume] * 3, -1), affine), str(scans[0].image_path))
    loaded = tmp_path / "pet_cache"
    evidence = plan.cached_image_space(scans[0], None, loaded_cache=loaded)
    assert evidence.space == "mni" and not loaded.exists()
    with pytest.raises(InputError, match="does not match 5 frames"):
        load_pet(scans[0])
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    from pipeline.bids.images import decode_nifti

    img, raw = decode_nifti(scans[1].image_path, mmap=False)
    assert store_decoded(scans[1], blocked, img, raw) is False
