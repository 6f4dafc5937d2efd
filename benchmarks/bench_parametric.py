"""Benchmark: parametric BP_ND maps on a whole-brain MNI 2 mm phantom (a benchmark, not a test).

Builds a 91 x 109 x 91 x 28 float32 image on the MNI152 2 mm grid (nilearn's MNI152 brain
mask resampled to it, ~230k brain voxels), with SRTM-consistent one-tissue voxel TACs
(carfentanil-like 90-min schedule, known BP_ND and R1 maps, occipital reference) plus
counting-statistics noise. Then, for each model, in a fresh subprocess: the time of
:func:`pipeline.parametric.fit_voxels` on the in-memory image (median of ``--runs``), peak
memory (``ru_maxrss`` of the subprocess, and the tracemalloc peak of one extra call),
voxel accuracy (median bias and RMSE of BP_ND against the truth) and diverged voxels.
Also: the time to load the image with nibabel, an end-to-end ``write_bp_maps`` run, and
the same data through NiftyPAD (``pip install niftypad``; a random voxel subset, timed
and extrapolated, since it fits voxel by voxel in Python).

Run from the repository root when the machine is otherwise idle::

    .venv/bin/python benchmarks/bench_parametric.py --runs 3 --workdir /tmp/petbp_bench
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

FRAME_DURATIONS_S = [30] * 6 + [60] * 5 + [120] * 5 + [180] * 4 + [300] * 4 + [600] * 4
K2PRIME = 0.12  # reference efflux, 1/min
K1PRIME = 0.3
TSTAR = 20.0
PETBP_MODELS = ["mrtm2", "logan_ref", "mrtm", "ratio", "srtm_bf", "srtm2", "srtm"]
NIFTYPAD_MODELS = {"mrtm2": "mrtm_k2p", "logan_ref": "logan_ref_k2p", "srtm_bf": "srtmb_basis"}


def _frames():
    from pipeline.frames import Frames

    starts = np.concatenate([[0.0], np.cumsum(FRAME_DURATIONS_S)[:-1]])
    return Frames.from_bids(starts, FRAME_DURATIONS_S)


def _sphere(coords_mm, centre, radius):
    return np.sum((coords_mm - np.asarray(centre)) ** 2, axis=-1) <= radius**2


def build_phantom(workdir: Path, noise: float, seed: int) -> dict:
    """Write the phantom (NIfTI + sidecar, .npy copies, truth maps) into ``workdir``."""
    import nibabel as nib
    from nilearn import datasets, image
    from scipy.ndimage import gaussian_filter

    from pipeline.frames import decay_correction_factors
    from pipeline.simulate.compartments import (
        convolve_exponential,
        feng_input,
        fine_grid,
        frame_average,
    )
    from pipeline.space import mni_grid

    rng = np.random.default_rng(seed)
    shape, affine = mni_grid(2)
    brain = image.resample_img(datasets.load_mni152_brain_mask(resolution=2),
                               target_affine=affine, target_shape=shape,
                               interpolation="nearest", force_resample=True,
                               copy_header=True).get_fdata() > 0.5
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = (ijk @ affine[:3, :3].T + affine[:3, 3]).reshape(*shape, 3)
    def smooth_field():
        field = gaussian_filter(rng.standard_normal(shape), 3)
        return field / field.std()

    bp = np.clip(0.8 + 0.3 * smooth_field(), 0.3, 1.6)
    for centre, radius, value in [((-10, -18, 8), 9, 3.5), ((10, -18, 8), 9, 3.5),
                                  ((-14, 12, 8), 7, 2.8), ((14, 12, 8), 7, 2.8),
                                  ((-24, 4, 2), 8, 2.5), ((24, 4, 2), 8, 2.5),
                                  ((-22, -4, -18), 6, 3.0), ((22, -4, -18), 6, 3.0)]:
        bp[_sphere(xyz, centre, radius)] = value
    cerebellum = (xyz[..., 2] < -25) & (xyz[..., 1] < -40)
    bp[cerebellum] = 0.2
    reference = brain & (xyz[..., 1] < -78) & (xyz[..., 2] > -5) & (xyz[..., 2] < 30)
    bp[reference] = 0.0
    r1 = np.clip(1.0 + 0.15 * smooth_field(), 0.6, 1.4)
    r1[reference] = 1.0
    frames = _frames()
    # lookup table of frame-averaged 1-tissue curves over k2a, then per-voxel interpolation
    t = fine_grid(frames.end[-1], 0.01)
    cp = feng_input(t, scale=1000.0)
    k2a_grid = np.geomspace(0.01, 0.5, 1500)
    table = frame_average(t, np.column_stack([convolve_exponential(t, cp, k) for k in
                                              k2a_grid]), frames)  # (n_frames, n_grid)
    ref_curve = K1PRIME * frame_average(t, convolve_exponential(t, cp, K2PRIME), frames)
    vox = np.flatnonzero(brain.reshape(-1))
    k2a = r1.reshape(-1)[vox] * K2PRIME / (1.0 + bp.reshape(-1)[vox])
    pos = np.interp(np.log(k2a), np.log(k2a_grid), np.arange(k2a_grid.size))
    lo = np.clip(np.floor(pos).astype(int), 0, k2a_grid.size - 2)
    frac = pos - lo
    curves = (table[:, lo] * (1 - frac) + table[:, lo + 1] * frac) * (
        K1PRIME * r1.reshape(-1)[vox])  # (n_frames, n_vox)
    dcf = decay_correction_factors(frames, 20.364)
    variance = np.maximum(curves, 1e-3 * curves.max()) * (dcf / frames.duration)[:, None]
    sd = noise * curves[-1] * np.sqrt(variance / variance[-1])
    noisy = curves + rng.standard_normal(curves.shape) * sd
    data = np.zeros((*shape, frames.n_frames), np.float32)
    data.reshape(-1, frames.n_frames)[vox] = noisy.T
    pet_dir = workdir / "sub-bench" / "pet"
    pet_dir.mkdir(parents=True, exist_ok=True)
    pet = pet_dir / "sub-bench_task-rest_pet.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(pet))
    nib.save(nib.Nifti1Image(data, affine), str(workdir / "uncompressed_pet.nii"))
    starts = np.concatenate([[0.0], np.cumsum(FRAME_DURATIONS_S)[:-1]]).tolist()
    (pet_dir / "sub-bench_task-rest_pet.json").write_text(json.dumps({
        "Units": "Bq/mL", "ImageDecayCorrected": True, "ImageDecayCorrectionTime": 0,
        "InjectionStart": 0, "TracerRadionuclide": "C11", "TracerName": "carfentanil",
        "FrameTimesStart": starts, "FrameDuration": FRAME_DURATIONS_S}))
    nib.save(nib.Nifti1Image(reference.astype(np.uint8), affine), str(workdir / "ref.nii.gz"))
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), str(workdir / "brain.nii.gz"))
    np.save(workdir / "data.npy", data)
    np.save(workdir / "brain.npy", brain)
    np.save(workdir / "reference.npy", reference)
    np.save(workdir / "bp_true.npy", bp.astype(np.float32))
    np.save(workdir / "ref_noiseless.npy", ref_curve)
    info = {"shape": [*shape, frames.n_frames], "n_brain": int(brain.sum()),
            "n_reference": int(reference.sum()), "noise": noise, "seed": seed,
            "pet": str(pet)}
    (workdir / "phantom.json").write_text(json.dumps(info))
    return info


def _inputs(workdir: Path):
    from pipeline.kinetics.k2prime import k2prime_from_mrtm
    from pipeline.parametric import reference_tac

    frames = _frames()
    data = np.load(workdir / "data.npy")
    brain = np.load(workdir / "brain.npy")
    reference = np.load(workdir / "reference.npy")
    bp_true = np.load(workdir / "bp_true.npy")
    ref = reference_tac(data, reference)
    target = brain & ~reference
    high = target & (bp_true >= 2.5)
    k2p = k2prime_from_mrtm(frames, ref, data[high].mean(axis=0).astype(float))
    return frames, data, brain, reference, bp_true, ref, target, k2p


def _options(model: str, k2p: float) -> dict:
    return {"mrtm2": {"k2prime": k2p}, "srtm2": {"k2prime": k2p},
            "logan_ref": {"k2prime": k2p, "t_star": TSTAR}, "mrtm": {"t_star": 0.0},
            "ratio": {"window": (45.0, 90.0)}, "srtm_bf": {"n_basis": 100}}.get(model, {})


#: Flags meaning the returned number is not an estimate (a bound, a failed fit, bad input):
#: a voxel carrying one counts as diverged. The informative flags (``grid_edge``,
#: ``large_se``, ``bf_fallback``, ``nonphysical`` with a ``bf_fallback`` estimate) mark
#: finite, bounded estimates that the data determine poorly; they are counted separately.
FAILURE_FLAGS = ("nan_input", "singular", "nonpositive_tac", "at_bound", "not_converged")


def _accuracy(bp: np.ndarray, bp_true: np.ndarray, flags=None) -> dict:
    from pipeline.parametric import FLAG_CODES

    err = bp - bp_true
    bad = ~np.isfinite(bp) | (bp < -1) | (bp > 20)
    flagged = np.zeros(bp.shape, bool)
    if flags is not None:
        failure = sum(FLAG_CODES[name] for name in FAILURE_FLAGS)
        bad |= (flags & failure) != 0
        nonphysical_kept = ((flags & FLAG_CODES["nonphysical"]) != 0) & \
            ((flags & FLAG_CODES["bf_fallback"]) == 0)
        bad |= nonphysical_kept
        flagged = (flags != 0) & ~bad
    ok = np.isfinite(err)
    return {"flagged": int(flagged.sum()),
            "flagged_rmse": float(np.sqrt(np.mean(err[flagged & ok] ** 2)))
            if (flagged & ok).any() else float("nan"),
            "median_bias": float(np.median(err[ok])),
            "median_rel_bias_pct": float(100 * np.median(err[ok & (bp_true > 0.5)]
                                                         / bp_true[ok & (bp_true > 0.5)])),
            "rmse": float(np.sqrt(np.mean(err[ok] ** 2))), "diverged": int(bad.sum()),
            "n": int(bp.size)}


def worker_petbp(workdir: Path, model: str, runs: int, n_jobs: int | None) -> dict:
    """Time fit_voxels for one model (run inside a fresh subprocess)."""
    from pipeline.parametric import fit_voxels

    frames, data, brain, _, bp_true, ref, target, k2p = _inputs(workdir)
    options = _options(model, k2p)
    times, cpu = [], []
    load_before = os.getloadavg()[0]
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        maps = fit_voxels(frames, ref, data, brain, model, n_jobs=n_jobs, **options)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    load_after = os.getloadavg()[0]
    tracemalloc.start()
    fit_voxels(frames, ref, data, brain, model, n_jobs=n_jobs, **options)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    acc = _accuracy(maps["bp_nd"][target], bp_true[target], maps["flags"][target])
    return {"impl": "petbp", "model": model, "options": {k: v for k, v in options.items()},
            "times": times, "median_s": statistics.median(times), "cpu_times": cpu,
            "cpu_s": statistics.median(cpu),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tracemalloc_peak_mb": traced_peak / 2**20, "k2prime": k2p, "n_jobs": n_jobs,
            "load_1min": [load_before, load_after], **acc}


def worker_write_maps(workdir: Path, runs: int) -> dict:
    """End to end: write_bp_maps (load .nii.gz, reference TAC, MRTM2 fit, write maps)."""
    from pipeline.parametric import write_bp_maps

    info = json.loads((workdir / "phantom.json").read_text())
    k2p = float(json.loads((workdir / "k2prime.json").read_text())["k2prime"])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        write_bp_maps(info["pet"], workdir / "ref.nii.gz", workdir / f"out{i}/bench",
                      model="mrtm2", mask_path=workdir / "brain.nii.gz", k2prime=k2p)
        times.append(time.perf_counter() - start)
    return {"impl": "petbp", "model": "mrtm2 write_bp_maps (end to end)", "times": times,
            "median_s": statistics.median(times),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker_load(workdir: Path, runs: int) -> list[dict]:
    import nibabel as nib

    out = []
    for label, path in [("nibabel load .nii.gz (float32)",
                         json.loads((workdir / "phantom.json").read_text())["pet"]),
                        ("nibabel load .nii (float32)", workdir / "uncompressed_pet.nii")]:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            # mmap=False: read every byte (a memory map would defer the reading)
            nib.load(str(path), mmap=False).get_fdata(dtype=np.float32)
            times.append(time.perf_counter() - start)
        out.append({"impl": "nibabel", "model": label, "times": times,
                    "median_s": statistics.median(times)})
    return out


def worker_niftypad(workdir: Path, model: str, subset: int, seed: int) -> dict:
    """NiftyPAD's own voxel loop (image_to_parametric) on a random voxel subset."""
    from niftypad import basis
    from niftypad.image_process.parametric_image import image_to_parametric
    from niftypad.tac import Ref

    from pipeline.parametric import fit_voxels

    frames, data, _, _, bp_true, ref, target, k2p = _inputs(workdir)
    rng = np.random.default_rng(seed)
    idx = rng.choice(np.flatnonzero(target.reshape(-1)), size=subset, replace=False)
    voxels = data.reshape(-1, frames.n_frames)[idx].astype(np.float64)
    image = voxels[:, None, None, :]
    mask = np.argwhere(np.ones((subset, 1, 1), bool))
    dt = np.array([frames.start_seconds, frames.end_seconds])
    reference = Ref(ref.copy(), dt)
    reference.interp_1()  # NiftyPAD's default: linear interpolation at 1-s steps
    inputf1 = reference.input_interp_1
    k2p_s = k2p / 60.0
    if model == "srtmb_basis":
        b = basis.make_basis(inputf1, dt, beta_lim=[0.005 / 60, 1.0 / 60], n_beta=100, w=None)
        inputs = {"b": b}
    elif model == "mrtm_k2p":
        inputs = {"dt": dt, "inputf1": inputf1, "k2p": k2p_s, "w": None,
                  "linear_phase_start": 0, "linear_phase_end": None, "fig": False}
    else:
        inputs = {"dt": dt, "inputf1": inputf1, "k2p": k2p_s, "w": None,
                  "linear_phase_start": TSTAR * 60, "linear_phase_end": None, "fig": False}
    start = time.perf_counter()
    result = image_to_parametric(image, dt, model, inputs, ["BP"], mask=mask)
    elapsed = time.perf_counter() - start
    bp = np.asarray(result["bp"]).reshape(-1)
    n_total = int(target.sum())
    acc = _accuracy(bp, bp_true.reshape(-1)[idx])
    ours_model = {v: k for k, v in NIFTYPAD_MODELS.items()}[model]
    ours = fit_voxels(frames, ref, voxels, None, ours_model, **_options(ours_model, k2p))
    same = _accuracy(ours["bp_nd"], bp_true.reshape(-1)[idx], ours["flags"])
    from importlib.metadata import version

    return {"impl": f"niftypad {version('niftypad')}", "model": model, "subset": subset,
            "subset_s": elapsed, "median_s": elapsed * n_total / subset, "extrapolated": True,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "petbp_same_voxels": same, "load_1min": os.getloadavg()[0], **acc}


def _run_worker(args: list[str], timeout: float) -> list[dict] | dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed",
                "args": args}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _flagged_text(r: dict) -> str:
    if "flagged" not in r:
        return ""
    return f"{r['flagged']}" + (f" ({r['flagged_rmse']:.3f})" if r["flagged"] else "")


def _table(rows: list[dict], info: dict) -> str:
    lines = [f"Phantom: {info['shape']} float32, {info['n_brain']} brain voxels "
             f"({info['n_reference']} reference), noise {info['noise']}",
             "",
             "| implementation | model | time (s, median) | CPU (s, median) | peak RSS (MB) "
             "| traced peak (MB) | median bias | median rel. bias (%) | RMSE | diverged "
             "| flagged, informative (RMSE) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['args']} | error: {r['error']} ||||||||")
            continue
        time_text = f"{r['median_s']:.3f}"
        if r.get("extrapolated"):
            time_text = f"{r['median_s']:.1f} (extrapolated from {r['subset']} voxels in " \
                        f"{r['subset_s']:.2f} s)"

        def fmt(key, spec, r=r):
            return format(r[key], spec) if key in r else ""

        lines.append(f"| {r['impl']} | {r['model']} | {time_text} | {fmt('cpu_s', '.3f')} "
                     f"| {fmt('maxrss_mb', '.0f')} "
                     f"| {fmt('tracemalloc_peak_mb', '.0f')} | {fmt('median_bias', '+.4f')} "
                     f"| {fmt('median_rel_bias_pct', '+.2f')} | {fmt('rmse', '.4f')} "
                     f"| {fmt('diverged', 'd')} | {_flagged_text(r)} |")
        if "petbp_same_voxels" in r:
            same = r["petbp_same_voxels"]
            lines.append(f"| petbp, same {r['subset']} voxels | (see above) | | | | "
                         f"| {same['median_bias']:+.4f} | {same['median_rel_bias_pct']:+.2f} "
                         f"| {same['rmse']:.4f} | {same['diverged']} "
                         f"| {_flagged_text(same)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/petbp_bench"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.10,
                        help="relative SD of a voxel's last (10-min) frame")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subset", type=int, default=2000, help="NiftyPAD voxels")
    parser.add_argument("--models", nargs="*", default=PETBP_MODELS)
    parser.add_argument("--reuse", action="store_true", help="reuse an existing phantom")
    parser.add_argument("--no-niftypad", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="fit_voxels threads (default: min(2, CPUs))")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "petbp":
            out = worker_petbp(args.workdir, rest[0], args.runs, args.n_jobs)
        elif kind == "write":
            out = worker_write_maps(args.workdir, args.runs)
        elif kind == "load":
            out = worker_load(args.workdir, args.runs)
        else:
            out = worker_niftypad(args.workdir, rest[0], args.subset, args.seed)
        print(json.dumps(out))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.reuse and (args.workdir / "phantom.json").is_file():
        info = json.loads((args.workdir / "phantom.json").read_text())
    else:
        start = time.perf_counter()
        info = build_phantom(args.workdir, args.noise, args.seed)
        print(f"phantom built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    common = ["--workdir", str(args.workdir), "--runs", str(args.runs),
              "--subset", str(args.subset), "--seed", str(args.seed)]
    if args.n_jobs is not None:
        common += ["--n-jobs", str(args.n_jobs)]
    rows: list[dict] = []
    load_start = os.getloadavg()[0]
    rows += _run_worker([*common, "--worker", "load"], 600)
    for model in args.models:
        result = _run_worker([*common, "--worker", "petbp", model], 1800)
        rows.append(result)
        if model == "mrtm2" and "k2prime" in result:
            (args.workdir / "k2prime.json").write_text(json.dumps({"k2prime": result["k2prime"]}))
        print(f"done {model}", file=sys.stderr)
    if (args.workdir / "k2prime.json").is_file():
        rows.append(_run_worker([*common, "--worker", "write"], 1800))
    if not args.no_niftypad:
        for model, np_model in NIFTYPAD_MODELS.items():
            if model in args.models:
                rows.append(_run_worker([*common, "--worker", "niftypad", np_model], 3600))
                print(f"done niftypad {np_model}", file=sys.stderr)
    table = _table(rows, info) + (
        f"\n\nLoad average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} "
        f"({os.cpu_count()} CPUs).")
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
