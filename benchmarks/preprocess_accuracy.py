"""Accuracy of scanner-space preprocessing against the same study analysed in MNI space.

Simulates one study twice with the same seed (:func:`pipeline.simulate.simulate_study` on
the MNI grid, :func:`pipeline.simulate.scanner_study.simulate_scanner_study` in PET scanner
space with head pose, size, repositioning, motion up to 3 mm / 2 deg and a T1w), runs the
preprocessing steps on the scanner-space study as the workflow does (normalization and
tissue segmentation per subject; motion, coregistration and native-space region TACs, with
the subject's grey matter and the default motion thresholds, per scan), extracts region
TACs of the MNI study with :func:`pipeline.regions.write_region_tacs`, fits both with
:func:`pipeline.kinetics.regionfit.fit_regions` in every condition window, and reports:

- regional BP_ND of every scan and window: |% difference| scanner-space vs MNI analysis
  (median, 90th percentile), and within-scan changes (% points);
- the same for the scanner-space images analysed as if they were MNI (no preprocessing);
- estimated motion vs the truth (RMS over brain points and frames, mm, after removing the
  constant reference offset) and the registration chain's error in MNI (mm);
- with ``--floor``: the same native-space TACs made with the simulator's *true* transforms
  (warp, PET-T1w pose, motion) instead of the estimated ones: what is left is not
  registration error (noise, and the two grids' different voxel sampling of the phantom);
- with ``--maps``: parametric BP_ND maps two ways, (A) fitted on motion-corrected native
  frames and warped to MNI, (B) frames warped once to MNI and fitted there, against the map
  of the MNI-space analysis (same model and reference TAC source), with their run times.

Two noise modes (both studies have the same seed, subjects, kinetics, voxel variability and
noise level):

- default, *independent noise*: each study draws its noise on its own grid (the scanner
  study as a scanner makes it). The errors then include the difference of two noise
  realizations, which is not preprocessing error: it is what two scans of one brain would
  differ by, and it dominates the within-scan change error (a difference of two windows'
  noisy BP_ND).
- ``--shared-noise``, *noise-matched twin*: the scanner-space study carries the MNI study's
  own noise realization into scanner space through the true pose and motion
  (``simulate_scanner_study(..., shared_noise=True)``). The errors then measure what the
  preprocessing adds: registration and motion errors, native- vs MNI-grid region sampling
  and the scanner grid's interpolation of the (same) noise. With ``--floor`` as well, the
  true-transform TACs show the part that is not registration error.

``--noise 0`` gives the preprocessing error on noiseless images (both modes coincide).
Each mode needs its own ``--workdir`` (the simulated studies are reused if present; the
mode is checked against the scanner study's ``truth.json``).

Run from the repository root (long: ~15-30 min on 2 shared cores)::

    .venv/bin/python benchmarks/preprocess_accuracy.py --workdir /tmp/petbp_prep --maps
    nice -n 10 .venv/bin/python benchmarks/preprocess_accuracy.py --workdir /tmp/twin11 \
        --seed 11 --subjects 2 --shared-noise --floor
    .venv/bin/python benchmarks/preprocess_accuracy.py --pool /tmp/twin11 /tmp/twin23

The report (``accuracy.json``) gives, per analysis kind and model, the BP_ND error (median,
p90, max of |%|) and the within-scan change error (median, p90 of |points|) over every scan,
window and region; ``changes_<kind>_<model>.tsv`` lists the changes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

WINDOWS = ((5.0, 45.0), (45.0, 90.0))        # the default config's baseline and task windows
MODELS = {"logan_ref": {"t_star": 10.0}, "srtm": {}}


def simulate(workdir: Path, subjects: int, seed: int, noise: float, coarse: bool,
             shared_noise: bool) -> None:
    """Both studies (skipped if present; an existing scanner study must have the same noise
    mode)."""
    from pipeline.simulate import simulate_study
    from pipeline.simulate.anatomy import T1Settings
    from pipeline.simulate.scanner_study import ScannerSettings, simulate_scanner_study

    voxel = 3.0 if coarse else 2.0
    scanner = (ScannerSettings(pet_voxel_mm=3.0, pet_shape=(86, 86, 64),
                               t1=T1Settings(voxel_mm=1.5, shape=(118, 140, 118)))
               if coarse else ScannerSettings())
    truth = workdir / "scanner" / "truth" / "truth.json"
    if not truth.exists():
        simulate_scanner_study(workdir / "scanner", subjects=subjects, seed=seed, noise=noise,
                               mni_voxel_size=voxel, scanner=scanner,
                               shared_noise=shared_noise)
    run = json.loads(truth.read_text()).get("run", {})
    mode = run.get("noise_realization", "scanner_grid")
    if mode != ("mni_grid_shared" if shared_noise else "scanner_grid"):
        raise SystemExit(f"{workdir} holds a scanner study with noise {mode!r}; use another "
                         "--workdir for this noise mode")
    if not (workdir / "mni" / "truth" / "truth.json").exists():
        simulate_study(workdir / "mni", subjects=subjects, seed=seed, noise=noise,
                       voxel_size=voxel)


def preprocess(workdir: Path) -> dict[str, list[float]]:
    """Run every step on the scanner-space study; return wall times per step (s)."""
    from pipeline.preprocess import (
        MotionThresholds,
        write_coregistration,
        write_motion,
        write_native_region_tacs,
        write_normalization,
    )
    from pipeline.preprocess.steps import write_segmentation
    from pipeline.regions import write_region_tacs

    bids, out = workdir / "scanner" / "bids", workdir / "derivatives"
    times: dict[str, list[float]] = {}

    def timed(step, func, *args, **kwargs):
        t0 = time.perf_counter()
        result = func(*args, **kwargs)
        times.setdefault(step, []).append(time.perf_counter() - t0)
        return result

    for sub_dir in sorted(bids.glob("sub-*")):
        sub = sub_dir.name
        t1 = sub_dir / "anat" / f"{sub}_T1w.nii.gz"
        if not (out / f"{sub}_desc-mnicoords_field.nii.gz").exists():
            timed("normalize", write_normalization, t1, out / sub)
        grey_matter = out / f"{sub}_label-GM_probseg.nii.gz"
        if not grey_matter.exists():
            timed("segment", write_segmentation, t1, out / f"{sub}_desc-mnicoords_field.nii.gz",
                  out / sub)
        for pet in sorted((sub_dir / "pet").glob("*_pet.nii.gz")):
            stem = out / pet.name.removesuffix("_pet.nii.gz")
            confounds = Path(f"{stem}_desc-confounds_timeseries.tsv")
            mean, xfm = Path(f"{stem}_desc-hmcmean_pet.nii.gz"), Path(f"{stem}_xfm.json")
            if not confounds.exists():
                timed("motion", write_motion, pet, confounds, mean, thresholds=None)
            if not xfm.exists():
                # as the workflow does: refined against the subject's synthetic PET
                timed("coregister", write_coregistration, mean, t1, xfm,
                      mnicoords_field=out / f"{sub}_desc-mnicoords_field.nii.gz",
                      probseg_gm=grey_matter, probseg_wm=out / f"{sub}_label-WM_probseg.nii.gz",
                      cache_dir=out / "cache")
            tacs = Path(f"{stem}_desc-native_tacs.tsv")
            if not tacs.exists():
                # as the workflow does: the subject's grey matter, the default thresholds
                timed("native_tacs", write_native_region_tacs, pet, confounds, xfm,
                      out / f"{sub}_desc-mnicoords_field.nii.gz", None, tacs,
                      probseg_gm=grey_matter, thresholds=MotionThresholds(),
                      cache_dir=out / "cache")
            mni_pet = workdir / "mni" / "bids" / sub / "pet" / pet.name
            write_region_tacs(mni_pet, None, f"{stem}_desc-mni_tacs.tsv", cache_dir=out / "cache")
            try:
                write_region_tacs(pet, None, f"{stem}_desc-asifmni_tacs.tsv",
                                  cache_dir=out / "cache")
            except Exception as err:
                print(f"{pet.name} analysed as if MNI: refused ({type(err).__name__}: {err})")
            print(f"preprocessed {pet.name}", {k: round(v[-1], 1) for k, v in times.items()},
                  flush=True)
    return times


def fit_all(workdir: Path, kind: str) -> pd.DataFrame:
    """BP_ND of every scan, window, model and region from the ``kind`` TAC tables."""
    from pipeline.kinetics.regionfit import fit_regions
    from pipeline.tables import read_tacs

    rows = []
    for path in sorted((workdir / "derivatives").glob(f"*_desc-{kind}_tacs.tsv")):
        sub, task = path.name.split("_")[:2]
        tacs = read_tacs(path)
        for model, options in MODELS.items():
            table = fit_regions(tacs, reference="occipital", model=model,
                                conditions=[(f"w{i}", w) for i, w in enumerate(WINDOWS)],
                                options=options).table
            rows += [{"participant_id": sub, "task": task.removeprefix("task-"),
                      "model": model, "window_start": w, "region": r, "bp_nd": b}
                     for w, r, b in zip(table["window_start"], table["region"],
                                        table["bp_nd"], strict=True)]
    return pd.DataFrame(rows)


def true_transform_tacs(workdir: Path) -> None:
    """Native-space TACs of every scan with the simulator's true transforms (``truexf``)."""
    from pipeline.bids import load_pet
    from pipeline.preprocess.native_regions import extract_native_tacs
    from pipeline.preprocess.native_steps import mni_region_masks
    from pipeline.simulate.scanner_study import read_scanner_truth
    from pipeline.tables import TacTable, write_tacs

    out = workdir / "derivatives"
    masks = mni_region_masks(None, cache_dir=out / "cache")
    for confounds in sorted(out.glob("*_desc-confounds_timeseries.tsv")):
        stem = confounds.name.removesuffix("_desc-confounds_timeseries.tsv")
        sub, task = stem.split("_")[0], stem.split("task-")[1]
        target = out / f"{stem}_desc-truexf_tacs.tsv"
        if target.exists():
            continue
        pet = load_pet(workdir / "scanner" / "bids" / sub / "pet" / f"{stem}_pet.nii.gz")
        truth = read_scanner_truth(workdir / "scanner" / "truth", sub, task)
        tacs, _ = extract_native_tacs(pet.data, masks, truth.head.mni_from_native,
                                      np.linalg.inv(truth.scanner_from_native), pet.affine,
                                      np.linalg.inv(truth.motion))
        write_tacs(target, TacTable(pet.frames, pd.DataFrame(np.asarray(tacs),
                                                             columns=masks.names)), {})


def geometry_errors(workdir: Path) -> pd.DataFrame:
    """Motion RMS error and registration-chain error per scan (mm)."""
    import nibabel as nib

    from pipeline.preprocess import read_coregistration, read_field, read_motion
    from pipeline.preprocess.motion import head_mask
    from pipeline.simulate.scanner_study import read_scanner_truth
    from pipeline.simulate.scoring import mapping_error, motion_error

    out, rows = workdir / "derivatives", []
    for confounds in sorted(out.glob("*_desc-confounds_timeseries.tsv")):
        sub, task = confounds.name.split("_")[:2]
        stem = confounds.name.removesuffix("_desc-confounds_timeseries.tsv")
        _, frame_from_reference, _ = read_motion(confounds)
        truth = read_scanner_truth(workdir / "scanner" / "truth", sub, task[5:])
        mean = nib.load(str(out / f"{stem}_desc-hmcmean_pet.nii.gz"))
        brain = head_mask(np.asarray(mean.dataobj), mean.affine, 0.3)
        points = np.argwhere(brain)[::4] @ mean.affine[:3, :3].T + mean.affine[:3, 3]
        motion = motion_error(frame_from_reference, truth.motion, points)
        chain = mapping_error(truth, read_field(out / f"{sub}_desc-mnicoords_field.nii.gz"),
                              read_coregistration(out / f"{stem}_xfm.json"),
                              frame_from_reference, points)
        true_fd = truth.table["framewise_displacement"].to_numpy()
        rows.append({"scan": stem, "motion_rms_mm": float(np.sqrt((motion ** 2).mean())),
                     "motion_max_frame_mm": float(motion.max()),
                     "true_max_translation_mm": float(np.linalg.norm(
                         truth.table[["trans_x", "trans_y", "trans_z"]].to_numpy(),
                         axis=1).max()),
                     "true_max_rotation_deg": float(np.degrees(np.max(np.linalg.norm(
                         truth.table[["rot_x", "rot_y", "rot_z"]].to_numpy(), axis=1)))),
                     "true_max_fd_mm": float(true_fd.max()),
                     "chain_error_median_mm": float(np.median(chain)),
                     "chain_error_max_mm": float(chain.max())})
    return pd.DataFrame(rows)


def compare_maps(workdir: Path) -> dict:
    """Parametric BP_ND (logan_ref) two ways for the first scan, against the MNI map."""
    import nibabel as nib

    from pipeline.bids import load_pet
    from pipeline.parametric import fit_voxels
    from pipeline.preprocess import (
        read_coregistration,
        read_field,
        read_motion,
        warp_frames_to_mni,
        warp_volume_to_mni,
    )
    from pipeline.preprocess.motion import head_mask, resample_frames
    from pipeline.preprocess.native_steps import mni_region_masks
    from pipeline.tables import read_tacs

    out = workdir / "derivatives"
    confounds = sorted(out.glob("*_desc-confounds_timeseries.tsv"))[0]
    stem = confounds.name.removesuffix("_desc-confounds_timeseries.tsv")
    sub = stem.split("_")[0]
    pet = load_pet(workdir / "scanner" / "bids" / sub / "pet" / f"{stem}_pet.nii.gz")
    mni_pet = load_pet(workdir / "mni" / "bids" / sub / "pet" / f"{stem}_pet.nii.gz")
    _, frame_from_reference, _ = read_motion(confounds)
    pet_from_t1 = np.linalg.inv(read_coregistration(out / f"{stem}_xfm.json"))
    field = read_field(out / f"{sub}_desc-t1coords_field.nii.gz")
    masks = mni_region_masks(None, cache_dir=out / "cache")
    targets = np.any(np.delete(masks.weights, masks.index(masks.reference), axis=0) >= 0.5,
                     axis=0)
    options = {"t_star": 10.0, "window": (5.0, 45.0)}
    ref_native = read_tacs(out / f"{stem}_desc-native_tacs.tsv").column("occipital")
    ref_mni = read_tacs(out / f"{stem}_desc-mni_tacs.tsv").column("occipital")
    result = {"scan": stem, "model": "logan_ref", **options}

    t0 = time.perf_counter()
    reference_map = fit_voxels(mni_pet.frames, ref_mni, mni_pet.data, targets, "logan_ref",
                               **options)["bp_nd"]
    result["mni_fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    corrected = resample_frames(pet.data, pet.affine, frame_from_reference)
    brain = head_mask(corrected.mean(axis=3), pet.affine, 0.2)
    native_map = fit_voxels(pet.frames, ref_native, corrected, brain, "logan_ref",
                            **options)["bp_nd"]
    map_a = warp_volume_to_mni(np.nan_to_num(native_map), pet.affine, pet_from_t1, field)
    result["a_native_fit_then_warp_s"] = time.perf_counter() - t0
    del corrected

    t0 = time.perf_counter()
    frames_mni = warp_frames_to_mni(pet.data, pet.affine, pet_from_t1, field,
                                    frame_from_reference)
    map_b = fit_voxels(pet.frames, ref_native, np.nan_to_num(frames_mni), targets,
                       "logan_ref", **options)["bp_nd"]
    result["b_warp_frames_then_fit_s"] = time.perf_counter() - t0

    for name, image in (("a", map_a), ("b", map_b)):
        diff = (image - reference_map)[targets]
        ok = np.isfinite(diff)
        result[f"{name}_rmse"] = float(np.sqrt(np.mean(diff[ok] ** 2)))
        result[f"{name}_median_abs_pct"] = float(np.median(np.abs(
            100 * diff[ok] / reference_map[targets][ok])))
        result[f"{name}_region_mean_abs_pct"] = float(np.median([abs(100 * (
            np.nanmean(image[masks.weights[r] >= 0.5]) / np.nanmean(
                reference_map[masks.weights[r] >= 0.5]) - 1)) for r in range(len(masks.names))
            if masks.names[r] != masks.reference]))
    nib.save(nib.Nifti1Image(np.stack([reference_map, map_a, map_b], -1).astype(np.float32),
                             masks.affine), str(out / f"{stem}_maps_mni_a_b.nii.gz"))
    return result


def pooled(workdirs: list[Path]) -> dict:
    """BP_ND and change errors pooled over finished runs (their ``compare_*.tsv`` tables)."""
    from pipeline.simulate.scoring import compare_bp

    report: dict = {"workdirs": [str(w) for w in workdirs]}
    for kind in ("native", "asifmni", "truexf"):
        for model in MODELS:
            tables = []
            for i, workdir in enumerate(workdirs):
                path = workdir / f"compare_{kind}_{model}.tsv"
                if path.exists():
                    table = pd.read_csv(path, sep="\t")
                    table["participant_id"] = f"{i}:" + table["participant_id"]
                    tables.append(table)
            if not tables:
                continue
            table = pd.concat(tables, ignore_index=True)
            keys = ["participant_id", "task", "region", "window_start"]
            comparison = compare_bp(table[keys].assign(bp_nd=table["bp_test"]),
                                    table[keys].assign(bp_nd=table["bp_ref"]))
            report[f"{kind}_{model}"] = comparison.summary() | {"runs": len(tables)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/petbp_prep_accuracy"))
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--noise", type=float, default=0.5,
                        help="noise level of both studies (0.5 = the demo's)")
    parser.add_argument("--coarse", action="store_true", help="3 mm grids (faster)")
    parser.add_argument("--maps", action="store_true", help="also compare parametric maps")
    parser.add_argument("--shared-noise", action="store_true",
                        help="the scanner-space study carries the MNI study's noise "
                        "realization (a noise-matched twin): measures preprocessing error "
                        "without the difference of two noise draws")
    parser.add_argument("--floor", action="store_true",
                        help="also TACs with the true transforms (the error left without "
                        "registration error)")
    parser.add_argument("--pool", type=Path, nargs="+", metavar="WORKDIR",
                        help="only pool the BP_ND and change errors of finished runs")
    args = parser.parse_args()
    if args.pool:
        print(json.dumps(pooled(args.pool), indent=1, default=float))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    simulate(args.workdir, args.subjects, args.seed, args.noise, args.coarse,
             args.shared_noise)
    print(f"simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    times = preprocess(args.workdir)
    from pipeline.simulate.scoring import compare_bp

    mni = fit_all(args.workdir, "mni")
    report: dict = {"settings": vars(args) | {"workdir": str(args.workdir)},
                    "step_times_s": times}
    if args.floor:
        true_transform_tacs(args.workdir)
    for kind in ("native", "asifmni", "truexf"):
        test = fit_all(args.workdir, kind)
        if test.empty:
            continue
        for model in MODELS:
            comparison = compare_bp(test[test.model == model], mni[mni.model == model])
            report[f"{kind}_{model}"] = comparison.summary()
            comparison.table.to_csv(args.workdir / f"compare_{kind}_{model}.tsv", sep="\t",
                                    index=False)
            comparison.changes.to_csv(args.workdir / f"changes_{kind}_{model}.tsv",
                                      sep="\t", index=False)
    geometry = geometry_errors(args.workdir)
    geometry.to_csv(args.workdir / "geometry.tsv", sep="\t", index=False)
    report["motion_rms_mm_all_scans"] = float(np.sqrt((geometry["motion_rms_mm"] ** 2).mean()))
    report["geometry"] = geometry.round(3).to_dict("records")
    if args.maps:
        report["maps"] = compare_maps(args.workdir)
    text = json.dumps(report, indent=1, default=float)
    (args.workdir / "accuracy.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
