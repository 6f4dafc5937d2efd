"""The loaded-image cache (pipeline.bids.image_cache): a scan is decompressed once per run."""

from __future__ import annotations

import os

import numpy as np
import pytest
from factories import make_bids, scan_files

import pipeline.bids.image_cache as image_cache
from pipeline.bids import load_pet, read_scan
from pipeline.bids.image_cache import cache_key, load_cached_pet


@pytest.fixture
def scan(tmp_path):
    """A kBq/mL scan stored without decay correction: loading converts and corrects it."""
    root = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"], shape=(5, 6, 4),
                     units="kBq/mL", decay_corrected=False)
    return read_scan(scan_files(root)[0])


@pytest.fixture
def counted(monkeypatch):
    """Calls of load_pet made by the cache."""
    calls = []
    monkeypatch.setattr(image_cache, "load_pet", lambda s: calls.append(s) or load_pet(s))
    return calls


def test_cached_copy_equals_load_pet_and_is_read_once(tmp_path, scan, counted):
    """The first call reads the image and stores it; the second maps the copy without
    reading: same values (bit for bit), notes, affine and frames, read-only."""
    direct = load_pet(scan)
    first = load_cached_pet(scan, tmp_path / "cache")
    second = load_cached_pet(scan, tmp_path / "cache")
    assert len(counted) == 1
    assert direct.notes and any("decay-corrected on load" in n for n in direct.notes)
    for image in (first, second):
        np.testing.assert_array_equal(image.data, direct.data)
        assert image.data.dtype == np.float32 and image.notes == direct.notes
        np.testing.assert_array_equal(image.affine, direct.affine)
        assert image.frames is scan.frames
    assert not second.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        second.data[0, 0, 0, 0] = 1.0  # the cache is never written through


def test_without_a_folder_it_is_load_pet(scan, counted):
    load_cached_pet(scan, None)
    load_cached_pet(scan, None)
    assert len(counted) == 2


def test_a_changed_image_is_read_again(tmp_path, scan, counted):
    """A new modification time (or size) of the image is a new key: no stale copy."""
    load_cached_pet(scan, tmp_path / "cache")
    key = cache_key(scan)
    stat = os.stat(scan.image_path)
    os.utime(scan.image_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache_key(scan) != key
    load_cached_pet(scan, tmp_path / "cache")
    assert len(counted) == 2


def test_a_broken_copy_only_costs_a_read(tmp_path, scan, counted):
    """A truncated .npy (e.g. a disk filled mid-write elsewhere) is ignored, not trusted."""
    load_cached_pet(scan, tmp_path / "cache")
    data_file = tmp_path / "cache" / f"{cache_key(scan)}.npy"
    data_file.write_bytes(data_file.read_bytes()[:200])
    again = load_cached_pet(scan, tmp_path / "cache")
    assert len(counted) == 2
    np.testing.assert_array_equal(again.data, load_pet(scan).data)
    # and it was stored again, whole
    assert load_cached_pet(scan, tmp_path / "cache").data.shape == load_pet(scan).data.shape
    assert len(counted) == 2


def test_load_pet_scales_integer_images_as_nibabel(tmp_path):
    """int16 data with a slope and an intercept: load_pet's float32 values (scaled a frame at
    a time) equal nibabel's ``np.asarray(dataobj, float32)`` bit for bit, .nii and .nii.gz."""
    import nibabel as nib

    from pipeline.bids.images import _scaled_float32, decode_nifti, read_nifti

    rng = np.random.default_rng(0)
    raw = rng.integers(-32768, 32767, size=(7, 5, 4, 3), dtype=np.int16)
    for name in ("a.nii", "a.nii.gz"):
        img = nib.Nifti1Image(raw, np.eye(4))
        img.header.set_slope_inter(0.6368134, 20332.078)
        img.to_filename(tmp_path / name)
        expected = np.asarray(nib.load(tmp_path / name).dataobj, dtype=np.float32)
        got = _scaled_float32(read_nifti(tmp_path / name, mmap=False).dataobj)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        img, stored = decode_nifti(tmp_path / name, mmap=False)
        if name.endswith(".gz"):  # the stored values viewed in the decompressed bytes
            np.testing.assert_array_equal(stored, raw)
        np.testing.assert_array_equal(_scaled_float32(img.dataobj, stored), expected)


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "<i2"])
def testdecode_nifti_gives_nibabels_values(tmp_path, dtype):
    """The stored values of a .nii.gz viewed in its decompressed bytes, then scaled (none,
    or a slope for the float32 case), equal nibabel's float32 values bit for bit, for both
    byte orders; the view is read-only, so load_pet copies it."""
    import nibabel as nib

    from pipeline.bids.images import _scaled_float32, decode_nifti

    rng = np.random.default_rng(1)
    values = (rng.normal(size=(6, 5, 4, 3)) * 1000).astype(dtype)
    for slope in (None, 2.5):
        img = nib.Nifti1Image(values, np.eye(4))
        img.header.set_data_dtype(np.dtype(dtype))
        if slope is not None:
            img.header.set_slope_inter(slope, 1.0)
        img.to_filename(tmp_path / "a.nii.gz")
        expected = np.asarray(nib.load(tmp_path / "a.nii.gz").dataobj, dtype=np.float32)
        loaded, stored = decode_nifti(tmp_path / "a.nii.gz", mmap=False)
        assert stored is not None and not stored.flags.writeable
        got = _scaled_float32(loaded.dataobj, stored)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_a_truncated_gzip_image_is_refused(tmp_path):
    """A .nii.gz cut short (one zlib call per member) is a clear error, not partial data."""
    import nibabel as nib

    from pipeline.bids.images import read_nifti

    nib.Nifti1Image(np.ones((4, 4, 4, 2), np.float32), np.eye(4)).to_filename(tmp_path / "a.nii.gz")
    data = (tmp_path / "a.nii.gz").read_bytes()
    (tmp_path / "b.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(EOFError):
        read_nifti(tmp_path / "b.nii.gz", mmap=False)
