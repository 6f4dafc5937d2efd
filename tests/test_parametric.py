"""Parametric maps: voxelwise fits equal region fits, NaN outside the mask, files, errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from factories import DEFAULT_AFFINE, make_bids, scan_files, write_image

from pipeline.errors import ConfigError, InputError
from pipeline.kinetics.mrtm import fit_mrtm2
from pipeline.parametric import FLAG_CODES, fit_voxels, flag_codes, write_bp_maps
from pipeline.simulate.compartments import srtm_consistent_tacs

SHAPE = (6, 6, 6)
K2PRIME = 0.12


def truth_image(frames):
    """Noiseless 6x6x6 image: x == 0 is the reference (BP 0), BP 0.5-4 elsewhere."""
    levels = np.linspace(0.5, 4.0, 8)
    bp = np.zeros(SHAPE)
    index = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    bp[1:] = levels[index[1:] % 8]
    r1 = np.where(bp > 0, 0.8 + 0.05 * (index % 5), 1.0)
    ref, tacs = srtm_consistent_tacs(frames, bp.reshape(-1), r1=r1.reshape(-1),
                                     k2prime=K2PRIME)
    data = tacs.T.reshape(*SHAPE, frames.n_frames).astype(np.float32)
    return ref, data, bp, r1


def test_fit_voxels_equals_column_fit_and_chunking(frames_90min):
    """Voxel maps equal the model on the same columns, whatever the chunk size."""
    ref, data, bp, r1 = truth_image(frames_90min)
    mask = np.ones(SHAPE, bool)
    mask[:, :, 0] = False
    maps = fit_voxels(frames_90min, ref, data, mask, "mrtm2", k2prime=K2PRIME)
    small = fit_voxels(frames_90min, ref, data, mask, "mrtm2", chunk_voxels=7,
                       k2prime=K2PRIME)
    direct = fit_mrtm2(frames_90min, ref, data[mask].T.astype(float), k2prime=K2PRIME)
    assert maps["bp_nd"].shape == SHAPE and maps["bp_nd"].dtype == np.float32
    np.testing.assert_allclose(maps["bp_nd"][mask], direct.bp_nd, rtol=1e-6)  # float32
    serial = fit_voxels(frames_90min, ref, data, mask, "mrtm2", chunk_voxels=7, n_jobs=1,
                        k2prime=K2PRIME)
    np.testing.assert_array_equal(maps["bp_nd"], small["bp_nd"])
    np.testing.assert_array_equal(small["bp_nd"], serial["bp_nd"])  # threads = serial
    assert np.all(np.isnan(maps["bp_nd"][~mask])) and np.all(np.isnan(maps["r1"][~mask]))
    # noiseless SRTM-consistent voxels: only frame-integration error (0.5 %, 1 %)
    np.testing.assert_allclose(maps["bp_nd"][mask & (bp > 0)], bp[mask & (bp > 0)], rtol=5e-3)
    np.testing.assert_allclose(maps["r1"][mask], r1[mask], rtol=1e-2)
    assert np.all(maps["flags"] == 0)


def test_fit_voxels_two_dimensional_input_and_models_without_r1(frames_90min):
    """(n_voxels, n_frames) input works; Logan has no R1 map."""
    ref, data, bp, _ = truth_image(frames_90min)
    flat = data.reshape(-1, frames_90min.n_frames)
    maps = fit_voxels(frames_90min, ref, flat, None, "logan_ref", k2prime=K2PRIME, t_star=10)
    assert set(maps) == {"bp_nd", "se", "flags"} and maps["bp_nd"].shape == (flat.shape[0],)
    np.testing.assert_allclose(maps["bp_nd"][bp.reshape(-1) > 0], bp[bp > 0], rtol=5e-3)


def test_fit_voxels_flags_bad_voxels_with_codes(frames_90min):
    """A NaN voxel becomes NaN with flag code nan_input; reference voxels (C_T = C_R, so
    MRTM's regressors are collinear) are flagged singular; the rest is clean."""
    ref, data, _bp, _ = truth_image(frames_90min)
    data[3, 3, 3, 5] = np.nan
    maps = fit_voxels(frames_90min, ref, data, None, "mrtm", t_star=0.0)
    assert maps["flags"][3, 3, 3] == FLAG_CODES["nan_input"]
    assert np.isnan(maps["bp_nd"][3, 3, 3])
    assert np.all(maps["flags"][0] == FLAG_CODES["singular"])
    assert np.count_nonzero(maps["flags"][1:]) == 1


def test_flag_codes_combines_bits():
    """Joined flags OR their codes; unknown names get the 'other' bit 128."""
    codes = flag_codes(np.array(["", "nan_input", "at_bound;not_converged", "weird"], object))
    assert codes.tolist() == [0, 1, 16 | 32, 128]


def test_fit_voxels_rejects_unknown_option_and_bad_shapes(frames_90min):
    """Options a model does not take, wrong mask shapes and empty masks are refused."""
    ref, data, _, _ = truth_image(frames_90min)
    with pytest.raises(ConfigError, match=r"model 'ratio' does not take option\(s\) n_basis"):
        fit_voxels(frames_90min, ref, data, None, "ratio", window=(45, 90), n_basis=10)
    with pytest.raises(InputError, match=r"mask shape \(6, 6\) differs"):
        fit_voxels(frames_90min, ref, data, np.ones((6, 6), bool), "mrtm", t_star=0.0)
    with pytest.raises(InputError, match="the mask selects no voxel"):
        fit_voxels(frames_90min, ref, data, np.zeros(SHAPE, bool), "mrtm")
    with pytest.raises(InputError, match=r"image data have shape \(6, 6, 6, 5\)"):
        fit_voxels(frames_90min, ref, data[..., :5], None, "mrtm")


@pytest.fixture
def pet_dataset(tmp_path, frames_90min):
    """A one-scan BIDS dataset (Bq/mL) of the truth image, a reference mask and a brain mask."""
    ref, data, bp, r1 = truth_image(frames_90min)
    root = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"], shape=SHAPE,
                     durations=list(frames_90min.duration * 60), units="Bq/mL",
                     data=lambda stem, shape: data)
    ref_mask = np.zeros(SHAPE, np.float32)
    ref_mask[0] = 1
    brain = np.ones(SHAPE, np.float32)
    brain[:, :, -1] = 0
    paths = {"pet": scan_files(root)[0],
             "ref": write_image(tmp_path / "ref.nii.gz", ref_mask),
             "brain": write_image(tmp_path / "brain.nii.gz", brain)}
    return paths, ref, bp, r1, brain > 0


def test_write_bp_maps_files_values_and_sidecar(tmp_path, pet_dataset):
    """MRTM2 maps from a BIDS image: truth within 0.5 %, NaN outside the mask, JSON."""
    paths, _, bp, r1, brain = pet_dataset
    out = tmp_path / "out" / "sub-01_model-mrtm2"
    written = write_bp_maps(paths["pet"], paths["ref"], out, model="mrtm2",
                            mask_path=paths["brain"], k2prime=K2PRIME, weights="duration")
    assert sorted(written) == ["bpnd", "flags", "json", "r1"]
    bpnd = nib.load(written["bpnd"])
    assert np.allclose(bpnd.affine, DEFAULT_AFFINE)
    values = np.asarray(bpnd.dataobj)
    target = brain & (bp > 0)
    np.testing.assert_allclose(values[target], bp[target], rtol=5e-3)
    np.testing.assert_allclose(np.asarray(nib.load(written["r1"]).dataobj)[brain], r1[brain],
                               rtol=1e-2)
    assert np.all(np.isnan(values[~brain]))
    sidecar = json.loads(written["json"].read_text())
    assert sidecar["model"] == "mrtm2" and sidecar["options"]["k2prime"] == K2PRIME
    assert sidecar["options"]["weights"] == "duration" and sidecar["k2prime_source"] == "given"
    assert sidecar["inputs"]["reference_mask"] == str(paths["ref"])
    assert sidecar["n_voxels"] == int(brain.sum()) and sidecar["n_flagged"] == 0
    assert sidecar["GeneratedBy"][0]["Name"] == "petbp"
    assert not list(out.parent.glob(".*"))  # no temporary files left behind


def test_write_bp_maps_estimates_k2prime_and_accepts_reference_tac(tmp_path, pet_dataset):
    """MRTM2 without k2' estimates it (within 1 %); an in-memory reference TAC works."""
    paths, ref, bp, _, brain = pet_dataset
    written = write_bp_maps(paths["pet"], None, tmp_path / "m", model="mrtm2",
                            mask_path=paths["brain"], ref_tac=ref, window=(0, 90))
    sidecar = json.loads(written["json"].read_text())
    assert sidecar["options"]["k2prime"] == pytest.approx(K2PRIME, rel=0.01)
    assert sidecar["inputs"]["reference_tac"] == "given"
    values = np.asarray(nib.load(written["bpnd"]).dataobj)
    np.testing.assert_allclose(values[brain & (bp > 0)], bp[brain & (bp > 0)], rtol=0.01)


def test_write_bp_maps_logan_has_no_r1(tmp_path, pet_dataset):
    """Models without R1 write no R1 map."""
    paths, *_ = pet_dataset
    written = write_bp_maps(paths["pet"], paths["ref"], tmp_path / "l", model="logan_ref",
                            t_star=20, k2prime=K2PRIME)
    assert "r1" not in written and not (tmp_path / "l_r1.nii.gz").exists()


def test_write_bp_maps_empty_reference_mask(tmp_path, pet_dataset):
    """An empty reference mask is a clear error naming the file."""
    paths, *_ = pet_dataset
    empty = write_image(tmp_path / "empty.nii.gz", np.zeros(SHAPE))
    with pytest.raises(InputError, match=r"empty\.nii\.gz: the reference mask is empty"):
        write_bp_maps(paths["pet"], empty, tmp_path / "x", model="mrtm", t_star=0)


def test_write_bp_maps_reference_outside_field_of_view(tmp_path, frames_90min):
    """A reference region where the image is zero is refused (outside the field of view)."""
    _ref, data, _, _ = truth_image(frames_90min)
    data[0] = 0.0
    root = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"], shape=SHAPE,
                     durations=list(frames_90min.duration * 60), units="Bq/mL",
                     data=lambda stem, shape: data)
    mask = np.zeros(SHAPE)
    mask[0] = 1
    ref_path = write_image(tmp_path / "ref.nii.gz", mask)
    with pytest.raises(InputError, match="outside the field of view"):
        write_bp_maps(scan_files(root)[0], ref_path, tmp_path / "x", model="mrtm")


def test_write_bp_maps_mask_on_another_grid(tmp_path, pet_dataset):
    """A mask with other dimensions is refused with the shapes."""
    paths, *_ = pet_dataset
    wrong = write_image(tmp_path / "wrong.nii.gz", np.ones((5, 6, 6)))
    with pytest.raises(InputError, match=r"reference mask has shape \(5, 6, 6\)"):
        write_bp_maps(paths["pet"], wrong, tmp_path / "x", model="mrtm")


def test_write_condition_maps_reads_the_image_once(tmp_path, pet_dataset, frames_90min,
                                                   monkeypatch):
    """Every window of a scan from one image read; the reference is the TAC table's
    column and k2prime: shared comes from the subject's file (both windows within 0.5 %)."""
    import pandas as pd

    import pipeline.bids
    from pipeline.parametric import write_condition_maps
    from pipeline.tables import TacTable, write_json, write_tacs

    paths, ref, bp, _, brain = pet_dataset
    tacs = write_tacs(tmp_path / "tacs.tsv", TacTable(frames_90min, pd.DataFrame({"ref": ref})))
    k2p = write_json(tmp_path / "k2prime.json", {"k2prime": K2PRIME})
    loads = []
    real_load = pipeline.bids.load_pet
    monkeypatch.setattr(pipeline.bids, "load_pet",
                        lambda *a, **k: loads.append(a) or real_load(*a, **k))
    out = write_condition_maps(
        paths["pet"], tacs, paths["brain"],
        {"early": tmp_path / "m_cond-early", "late": tmp_path / "m_cond-late"},
        windows={"early": (0, 45), "late": (45, 90)}, reference="ref", model="mrtm2",
        options={"k2prime": "shared", "weights": "duration"}, k2prime_path=k2p)
    assert len(loads) == 1 and sorted(out) == ["early", "late"]
    target = brain & (bp > 0)
    for cond, window in (("early", [0, 45]), ("late", [45, 90])):
        values = np.asarray(nib.load(out[cond]).dataobj)
        np.testing.assert_allclose(values[target], bp[target], rtol=5e-3)
        side = json.loads((tmp_path / f"m_cond-{cond}_bpnd.json").read_text())
        assert side["options"]["window"] == window and side["options"]["k2prime"] == K2PRIME
        assert side["k2prime_source"].startswith("the subject's shared k2'")
        assert side["inputs"]["reference_tac"] == "given"


def test_maps_estimate_shared_k2prime_from_the_subjects_tacs(tmp_path, pet_dataset,
                                                              frames_90min):
    """The workflow's map jobs estimate the subject's k2' from its TAC tables themselves
    (k2prime_tacs): the same maps, voxel for voxel, as from the k2' file that
    write_subject_k2prime writes from those tables (the fit jobs' file), and k2' within 1 %
    of the 0.12 /min of the noiseless SRTM-consistent TACs (so BP_ND within 0.5 %)."""
    import pandas as pd

    from pipeline.design import K2primeSettings
    from pipeline.kinetics import write_subject_k2prime
    from pipeline.parametric import write_condition_maps
    from pipeline.simulate.compartments import srtm_consistent_tacs
    from pipeline.tables import TacTable, read_json, write_tacs

    paths, ref, bp, _, brain = pet_dataset
    tacs = write_tacs(tmp_path / "tacs.tsv", TacTable(frames_90min, pd.DataFrame({"ref": ref})))
    subject = []
    for n, bps in enumerate(([2.0, 2.5], [1.5, 3.0])):
        sim_ref, high = srtm_consistent_tacs(frames_90min, bps, k2prime=K2PRIME)
        subject.append(write_tacs(tmp_path / f"scan{n}_tacs.tsv", TacTable(
            frames_90min, pd.DataFrame({"ref": sim_ref, "a": high[:, 0], "b": high[:, 1]}))))
    settings = K2primeSettings("srtm", ("a", "b"), None)
    k2p = write_subject_k2prime(subject, tmp_path / "k2prime.json", settings=settings,
                                reference="ref")
    common = dict(windows={"late": (45, 90)}, reference="ref", model="mrtm2",
                  options={"k2prime": "shared", "weights": "duration"})
    from_file = write_condition_maps(paths["pet"], tacs, paths["brain"],
                                     {"late": tmp_path / "file_cond-late"}, k2prime_path=k2p,
                                     **common)["late"]
    estimated = write_condition_maps(paths["pet"], tacs, paths["brain"],
                                     {"late": tmp_path / "est_cond-late"},
                                     k2prime_tacs=subject, k2prime_settings=settings,
                                     **common)["late"]
    a, b = (np.asarray(nib.load(f).dataobj) for f in (from_file, estimated))
    np.testing.assert_array_equal(a, b)
    side = json.loads((tmp_path / "est_cond-late_bpnd.json").read_text())
    assert side["options"]["k2prime"] == read_json(k2p)["k2prime"]
    assert side["options"]["k2prime"] == pytest.approx(K2PRIME, rel=0.01)
    assert side["inputs"]["k2prime_tacs"] == [str(p) for p in subject]
    target = brain & (bp > 0)
    np.testing.assert_allclose(b[target], bp[target], rtol=5e-3)


def test_default_mask_keeps_finite_active_voxels(frames_90min):
    """Without a brain mask: voxels with any NaN frame or a mean below 5 % of the 98th
    percentile are left out, the rest kept."""
    from pipeline.parametric import default_mask

    data = np.full((4, 4, 4, frames_90min.n_frames), 100.0, np.float32)
    data[0, 0, 0] = 4.0  # 4 % of the level
    data[1, 1, 1, 5] = np.nan
    mask = default_mask(data, frames_90min.duration)
    assert mask.shape == (4, 4, 4) and mask.sum() == 62
    assert not mask[0, 0, 0] and not mask[1, 1, 1]


def test_fit_voxels_same_maps_for_fortran_ordered_images(frames_90min):
    """NIfTI images load in Fortran order (gathered frame by frame, no 4D copy): the maps
    equal those of the same data in C order, voxel for voxel."""
    ref, data, _, _ = truth_image(frames_90min)
    mask = np.ones(SHAPE, bool)
    mask[2, :, 3] = False
    c_maps = fit_voxels(frames_90min, ref, data, mask, "mrtm2", k2prime=K2PRIME)
    f_maps = fit_voxels(frames_90min, ref, np.asfortranarray(data), mask, "mrtm2",
                        k2prime=K2PRIME)
    for key in ("bp_nd", "r1", "flags"):
        np.testing.assert_array_equal(f_maps[key], c_maps[key])
    assert np.isnan(f_maps["bp_nd"][2, 0, 3]) and np.isfinite(f_maps["bp_nd"][3, 0, 3])


def test_condition_maps_from_the_image_cache_equal_a_fresh_read(tmp_path, pet_dataset,
                                                                frames_90min):
    """Maps of a scan memory-mapped from the image cache equal those of a fresh read, bit for
    bit (pipeline.bids.image_cache; tests/test_image_cache.py counts the reads)."""
    import pandas as pd

    from pipeline.bids import read_scan
    from pipeline.parametric import write_condition_map
    from pipeline.tables import TacTable, write_tacs

    paths, ref, _, _, _ = pet_dataset
    tacs = write_tacs(tmp_path / "tacs.tsv", TacTable(frames_90min, pd.DataFrame({"ref": ref})))
    scan = read_scan(paths["pet"])
    kwargs = {"window": (45, 90), "reference": "ref", "model": "mrtm2",
              "options": {"k2prime": K2PRIME}}
    fresh = write_condition_map(scan, tacs, paths["brain"], tmp_path / "a", **kwargs)
    write_condition_map(scan, tacs, paths["brain"], tmp_path / "b",
                        image_cache=tmp_path / "cache", **kwargs)  # reads and stores
    assert list((tmp_path / "cache").glob("*.npy"))
    cached = write_condition_map(scan, tacs, paths["brain"], tmp_path / "c",
                                 image_cache=tmp_path / "cache", **kwargs)
    np.testing.assert_array_equal(np.asarray(nib.load(cached).dataobj),
                                  np.asarray(nib.load(fresh).dataobj))


def test_scan_maps_write_the_mask_then_every_window(tmp_path, pet_dataset, frames_90min,
                                                    monkeypatch):
    """The workflow's map step (one job per scan): the analysis mask of the image's grid is
    written first (as write_analysis_mask alone writes it), then every window's map on it
    from one image read, equal bit for bit to write_condition_maps given that mask."""
    import pandas as pd

    import pipeline.bids
    from pipeline.parametric import analysis_mask, write_condition_maps, write_scan_maps
    from pipeline.tables import TacTable, write_tacs

    paths, ref, _, _, _ = pet_dataset
    tacs = write_tacs(tmp_path / "tacs.tsv", TacTable(frames_90min, pd.DataFrame({"ref": ref})))
    loads = []
    real_load = pipeline.bids.load_pet
    monkeypatch.setattr(pipeline.bids, "load_pet",
                        lambda *a, **k: loads.append(a) or real_load(*a, **k))
    kwargs = {"windows": {"early": (0, 45), "late": (45, 90)}, "reference": "ref",
              "model": "mrtm2", "options": {"k2prime": K2PRIME}}
    mask_path = tmp_path / "scan_desc-analysis_mask.nii.gz"
    out = write_scan_maps(paths["pet"], tacs, mask_path,
                          {c: tmp_path / f"m_cond-{c}" for c in ("early", "late")},
                          mask_mode="brain", **kwargs)
    assert len(loads) == 1 and sorted(out) == ["early", "late"]
    image = nib.load(paths["pet"])
    expected = analysis_mask(None, image.shape, image.affine, "brain")
    assert expected.any() and not expected.all()  # a real mask on this grid, not everything
    np.testing.assert_array_equal(np.asarray(nib.load(mask_path).dataobj) > 0, expected)
    again = write_condition_maps(paths["pet"], tacs, mask_path,
                                 {c: tmp_path / f"n_cond-{c}" for c in ("early", "late")},
                                 **kwargs)
    for cond in ("early", "late"):
        np.testing.assert_array_equal(np.asarray(nib.load(out[cond]).dataobj),
                                      np.asarray(nib.load(again[cond]).dataobj))
