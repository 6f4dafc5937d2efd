"""Hypothesis fuzzing of PET sidecars: any JSON either reads as a Scan or gives InputError."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factories import make_bids, scan_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import bids
from pipeline.errors import InputError

N_FRAMES = 3

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["Bq/mL", "kBq/mL", "nCi/cc", "C11", "[18F]", "11C", "true", "60"]),
)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
_times = st.one_of(
    st.lists(st.floats(min_value=-100, max_value=1e5), min_size=N_FRAMES, max_size=N_FRAMES),
    st.lists(st.integers(min_value=-100, max_value=10**6), min_size=0, max_size=5),
    _json,
)
_FIELDS = {
    "FrameTimesStart": _times,
    "FrameDuration": _times,
    "Units": st.one_of(st.sampled_from(["Bq/mL", "kBq/mL", "MBq/mL", "uCi/mL", "counts"]),
                       _json),
    "TracerRadionuclide": st.one_of(st.sampled_from(["C11", "[11C]", "F-18", "Xx1"]), _json),
    "ImageDecayCorrected": st.one_of(st.booleans(), _json),
    "ImageDecayCorrectionTime": st.one_of(st.floats(-1e4, 1e4), _json),
    "InjectionStart": st.one_of(st.floats(-1e4, 1e4), _json),
    "TracerName": _json,
}
# each field is either left as written by the factory, removed, or replaced
_sidecars = st.fixed_dictionaries({}, optional={
    key: st.one_of(st.just(...), value) for key, value in _FIELDS.items()})


@pytest.fixture(scope="module")
def scan_path(tmp_path_factory):
    """One tiny 3-frame scan whose sidecar each example overwrites."""
    root = make_bids(tmp_path_factory.mktemp("fuzz"), subjects=["01"], tasks=["rest"],
                     shape=(2, 2, 2), durations=[60.0, 120.0, 300.0])
    return scan_files(root)[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=_sidecars)
def test_read_scan_fuzzed_sidecar_gives_scan_or_input_error(scan_path, changes):
    """Random types and values in sidecar fields never raise anything but InputError."""
    sidecar = scan_path.with_name("sub-01_task-rest_pet.json")
    fields = {"Units": "kBq/mL", "TracerRadionuclide": "C11", "ImageDecayCorrected": True,
              "FrameTimesStart": [0, 60, 180], "FrameDuration": [60, 120, 300]}
    for key, value in changes.items():
        if value is ...:
            fields.pop(key, None)
        else:
            fields[key] = value
    sidecar.write_text(json.dumps(fields))
    try:
        scan = bids.read_scan(scan_path)
    except InputError as err:
        assert "sub-01_task-rest_pet" in str(err)  # every message names the file
        return
    assert scan.frames.n_frames == N_FRAMES
    assert np.all(np.isfinite(scan.frames.start)) and np.all(scan.frames.duration > 0)
    assert scan.bq_scale > 0 and isinstance(scan.decay_corrected, bool)
    assert scan.decay_corrected or scan.half_life is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(decay_corrected=st.booleans(), correction_time=st.floats(-1e6, 1e6),
       injection=st.floats(-1e3, 1e3), units=st.sampled_from(["Bq/mL", "kBq/mL", "nCi/mL"]))
def test_load_pet_fuzzed_timing_gives_finite_data_or_input_error(
        scan_path, decay_corrected, correction_time, injection, units):
    """Any valid-typed timing either loads as finite positive Bq/mL or gives InputError."""
    sidecar = scan_path.with_name("sub-01_task-rest_pet.json")
    starts = [injection + t for t in (0.0, 60.0, 180.0)]
    sidecar.write_text(json.dumps({
        "Units": units, "TracerRadionuclide": "C11", "ImageDecayCorrected": decay_corrected,
        "ImageDecayCorrectionTime": correction_time, "InjectionStart": injection,
        "FrameTimesStart": starts, "FrameDuration": [60, 120, 300]}))
    try:
        image = bids.load_pet(scan_path)
    except InputError as err:
        assert "sub-01_task-rest_pet" in str(err)
        return
    assert np.all(np.isfinite(image.data)) and np.all(image.data > 0)


_cells = st.one_of(st.text(max_size=6), st.sampled_from(["n/a", "", "sub-01", "01", "1.5",
                                                         "sub-0 1", "\t", '"', "1e400"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(header=st.lists(st.sampled_from(["participant_id", "age", "er89", "", "sex"]),
                       min_size=1, max_size=4),
       rows=st.lists(st.lists(_cells, min_size=0, max_size=5), max_size=4))
def test_read_participants_fuzzed_table_gives_table_or_input_error(tmp_path, header, rows):
    """Any text in participants.tsv gives a table with sub- ids, or an InputError."""
    path = tmp_path / "participants.tsv"
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n",
                    encoding="utf-8", errors="surrogatepass")
    try:
        table = bids.read_participants(path)
    except InputError as err:
        assert "participants.tsv" in str(err)
        return
    assert table["participant_id"].str.fullmatch(r"sub-[A-Za-z0-9]+").all()
    assert not table["participant_id"].duplicated().any()
    for column in table.columns.drop("participant_id"):
        if table[column].dtype.kind == "f":
            bids.numeric_score(table, column)
