"""Tests of pipeline.bids.scan_cache: scans reused between parses, never stale."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from factories import make_bids, write_image, write_sidecar

from pipeline import bids
from pipeline.bids import scan_cache
from pipeline.bids.scan_cache import ScanCache


@pytest.fixture
def cached(monkeypatch):
    """Files written by the test are seconds old at most: store them anyway."""
    monkeypatch.setattr(scan_cache, "RACY_SECONDS", 0.0)


def _discover(root, folder):
    """The scans by stem, and the cache's hits of that discovery."""
    hits = []
    real = ScanCache.save

    def save(self):
        hits.append(self.hits)
        real(self)

    ScanCache.save = save
    try:
        scans = bids.discover_scans(root, cache_dir=folder)
    finally:
        ScanCache.save = real
    return {s.stem: s for s in scans}, hits[0]


def _edit_keeping_size_and_times(path, old, new):
    """Rewrite ``path`` with ``old`` replaced by ``new`` (same length), then give it back its
    size and modification time: only its content (and change time) says it was edited."""
    st = os.stat(path)
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_second_discovery_reuses_every_scan(tmp_path, cached):
    """Unchanged files: every scan comes from the cache, equal to a fresh read."""
    root = make_bids(tmp_path / "bids")
    _, hits = _discover(root, tmp_path / "cache")
    assert hits == 0
    again, hits = _discover(root, tmp_path / "cache")
    assert hits == 4
    fresh = {s.stem: s for s in bids.discover_scans(root)}
    assert again.keys() == fresh.keys()
    for stem, scan in again.items():
        for field in dataclasses.fields(scan):
            value, expected = getattr(scan, field.name), getattr(fresh[stem], field.name)
            if field.name == "frames":
                np.testing.assert_array_equal(value.start, expected.start)
                np.testing.assert_array_equal(value.end, expected.end)
            else:
                np.testing.assert_equal(value, expected, err_msg=field.name)


def test_edited_sidecar_is_read_again(tmp_path, cached):
    """A sidecar edited in place, with its size and modification time kept, is read again:
    the cache compares sidecars by content."""
    root = make_bids(tmp_path / "bids")
    first, _ = _discover(root, tmp_path / "cache")
    assert first["sub-01_task-rejection"].units == "kBq/mL"
    sidecar = root / "sub-01/pet/sub-01_task-rejection_pet.json"
    _edit_keeping_size_and_times(sidecar, '"kBq/mL"', '"MBq/mL"')
    again, hits = _discover(root, tmp_path / "cache")
    assert again["sub-01_task-rejection"].units == "MBq/mL"
    assert again["sub-01_task-rejection"].bq_scale == 1e6
    assert hits == 3  # the other scans are unchanged


def test_new_inherited_sidecar_is_read(tmp_path, cached):
    """A sidecar added higher up the tree changes the chain of the scans it applies to."""
    root = make_bids(tmp_path / "bids", sidecar={"TracerName": ...})
    first, _ = _discover(root, tmp_path / "cache")
    assert first["sub-01_task-rejection"].tracer is None
    write_sidecar(root / "task-rejection_pet.json", {"TracerName": "carfentanil"})
    again, hits = _discover(root, tmp_path / "cache")
    assert {s: again[s].tracer for s in again} == {
        "sub-01_task-acceptance": None, "sub-01_task-rejection": "carfentanil",
        "sub-02_task-acceptance": None, "sub-02_task-rejection": "carfentanil"}
    assert hits == 2


def test_replaced_image_is_read_again(tmp_path, cached):
    """An image replaced by one of another shape (same file name) is read again."""
    root = make_bids(tmp_path / "bids")
    first, _ = _discover(root, tmp_path / "cache")
    image = root / "sub-02/pet/sub-02_task-acceptance_pet.nii.gz"
    shape = first["sub-02_task-acceptance"].shape
    write_image(image, np.ones((*[n + 1 for n in shape[:3]], shape[3])))
    again, hits = _discover(root, tmp_path / "cache")
    assert again["sub-02_task-acceptance"].shape[:3] == tuple(n + 1 for n in shape[:3])
    assert hits == 3


def test_recently_changed_image_is_not_stored(tmp_path, monkeypatch):
    """An image changed within RACY_SECONDS is read but not kept (a later write in the same
    clock tick could leave its times as they were). The window is widened to an hour so a
    slow machine cannot age the test's images out of it between writing and reading."""
    monkeypatch.setattr(scan_cache, "RACY_SECONDS", 3600.0)
    root = make_bids(tmp_path / "bids")
    _discover(root, tmp_path / "cache")
    _, hits = _discover(root, tmp_path / "cache")
    assert hits == 0


def test_broken_sidecar_is_never_cached(tmp_path, cached):
    """A scan that cannot be read fails on every discovery, and is read once fixed."""
    root = make_bids(tmp_path / "bids")
    sidecar = root / "sub-01/pet/sub-01_task-rejection_pet.json"
    fields = json.loads(sidecar.read_text())
    write_sidecar(sidecar, {**fields, "Units": "bad"})
    for _ in range(2):
        _, problems = bids.inspect_scans(root, cache_dir=tmp_path / "cache")
        assert len(problems) == 1 and "bad" in str(problems[0])
    write_sidecar(sidecar, fields)
    scans, hits = _discover(root, tmp_path / "cache")
    assert scans["sub-01_task-rejection"].units == fields["Units"] and hits == 3


def test_unreadable_cache_file_reads_every_scan(tmp_path, cached):
    """A damaged cache file is ignored (and replaced)."""
    root = make_bids(tmp_path / "bids")
    _discover(root, tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache").glob("scans-*.pickle")
    cache_file.write_bytes(b"not a pickle")
    scans, hits = _discover(root, tmp_path / "cache")
    assert len(scans) == 4 and hits == 0
    assert _discover(root, tmp_path / "cache")[1] == 4
