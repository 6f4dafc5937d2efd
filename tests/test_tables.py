"""Atomic writes, TSV round trips, sidecars and TAC tables."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.frames import Frames
from pipeline.tables import (
    TacTable,
    atomic_path,
    read_json,
    read_table,
    read_tacs,
    sidecar_path,
    write_json,
    write_table,
    write_tacs,
)


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    """An exception inside the block removes the temporary file and keeps the target absent."""
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_an_old_target_when_the_writer_fails(tmp_path):
    """A failed rewrite leaves the previous file intact."""
    target = tmp_path / "out.tsv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]


def test_atomic_path_gives_umask_permissions(tmp_path):
    """Outputs are readable like any file the user writes (not mkstemp's 0600)."""
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_atomic_path_keeps_compound_suffix(tmp_path):
    """The temporary name keeps .nii.gz so writers that look at the suffix still compress."""
    with atomic_path(tmp_path / "map.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"x")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a_bp.tsv", "a_bp.json"), ("m_bpnd.nii.gz", "m_bpnd.json"), ("x.nii", "x.json"),
     ("fig.png", "fig.json"), ("noext", "noext.json")],
)
def test_sidecar_path(name, expected, tmp_path):
    """Each table, image or figure has a JSON sidecar named after its stem."""
    assert sidecar_path(tmp_path / name).name == expected


def test_write_table_round_trips_missing_values(tmp_path):
    """NaN is written as n/a and read back as NaN; the sidecar is written beside it."""
    table = pd.DataFrame({"region": ["a", "b"], "bp_nd": [1.25, np.nan]})
    path = write_table(tmp_path / "t.tsv", table, sidecar={"model": "srtm"})
    assert "n/a" in path.read_text()
    back = read_table(path)
    assert back["bp_nd"].iloc[0] == 1.25
    assert np.isnan(back["bp_nd"].iloc[1])
    assert read_json(tmp_path / "t.json")["model"] == "srtm"


def test_write_json_makes_nan_null_and_arrays_lists(tmp_path):
    """JSON sidecars hold no NaN (invalid JSON) and no numpy types."""
    write_json(tmp_path / "s.json", {"x": float("nan"), "a": np.arange(3), "f": np.float32(2)})
    assert read_json(tmp_path / "s.json") == {"x": None, "a": [0, 1, 2], "f": 2.0}


def test_read_json_names_a_broken_file(tmp_path):
    """Invalid JSON is an InputError naming the file."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        read_json(bad)


def test_tacs_round_trip_in_seconds_and_bq(tmp_path):
    """TAC files hold seconds; the TacTable holds minutes; values are unchanged."""
    frames = Frames.from_bids([0, 60, 180], [60, 120, 300])
    tacs = TacTable(frames, pd.DataFrame({"occipital": [1.0, 2.0, 3.0], "pag": [2.0, 4.0, 6.5]}))
    path = write_tacs(tmp_path / "x_tacs.tsv", tacs)
    raw = read_table(path)
    np.testing.assert_allclose(raw["frame_end"], [60, 180, 480])
    back = read_tacs(path)
    np.testing.assert_allclose(back.frames.end, [1.0, 3.0, 8.0])
    np.testing.assert_allclose(back.column("pag"), [2.0, 4.0, 6.5])
    assert back.regions == ["occipital", "pag"]


def test_read_tacs_requires_frame_columns(tmp_path):
    """A table without frame_start/frame_end says which columns are missing."""
    path = tmp_path / "t.tsv"
    pd.DataFrame({"a": [1.0]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match=r"t\.tsv: missing column\(s\) frame_start, frame_end"):
        read_tacs(path)


def test_read_tacs_rejects_text_values(tmp_path):
    """Non-numeric activity names the column."""
    path = tmp_path / "t.tsv"
    pd.DataFrame({"frame_start": [0], "frame_end": [60], "pag": ["high"]}).to_csv(
        path, sep="\t", index=False)
    with pytest.raises(InputError, match=r"non-numeric values in column\(s\) pag"):
        read_tacs(path)


def test_tac_table_column_lists_regions_when_absent():
    """Asking for a missing region lists the ones there are."""
    frames = Frames.from_bids([0], [60], source="x_tacs.tsv")
    tacs = TacTable(frames, pd.DataFrame({"occipital": [1.0]}))
    with pytest.raises(InputError, match=r"(?s)no region 'cerebellum'.*occipital"):
        tacs.column("cerebellum")
