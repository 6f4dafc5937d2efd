"""Benchmark: ``petbp map`` wall time beyond a load-and-save baseline (a benchmark, not a test).

Uses the whole-brain MNI 2 mm phantom of ``bench_parametric.py`` (91 x 109 x 91 x 28 float32,
~235k brain voxels, SRTM-consistent voxel TACs with known BP_ND; default noise here 5 %).
Each row runs in fresh processes, ``--runs`` times:

* ``baseline``: ``python -c`` that imports ``pipeline``, loads the 4D ``.nii.gz`` with nibabel
  into float32 and saves one 3D float32 volume as ``.nii.gz``: what any tool must pay;
* ``petbp map`` for each model (``python -m pipeline map PET --reference-mask REF --mask
  BRAIN --model M ...``), with k2' given (estimated once by MRTM from the mean TAC of the
  high-binding voxels, as in ``bench_parametric.py``), Logan t* 20 min, ratio window 45-90.

Reported: median wall time and the median *beyond the baseline*, peak RSS of the child
process (``ru_maxrss`` from ``wait4``), and the accuracy of the written BP_ND map against the
truth over the non-reference brain voxels (median bias, median relative bias for BP_ND > 0.5,
RMSE, and diverged voxels as defined in ``bench_parametric.py``). The 1-min load average is
printed with the table.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cli_map.py --runs 3 --workdir /tmp/petbp_bench_map
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_parametric as phantom

MODELS = ["mrtm2", "logan_ref", "mrtm", "ratio", "srtm_bf", "srtm2", "srtm"]

_BASELINE = """
import sys, numpy as np, nibabel as nib
import pipeline
img = nib.load(sys.argv[1])
data = img.get_fdata(dtype=np.float32)
out = nib.Nifti1Image(data[..., -1].copy(), img.affine)
nib.save(out, sys.argv[2])
"""


def _timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall time (s), CPU time (user + system, s) and peak RSS (MB) of one child process;
    raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _model_args(model: str, k2p: float) -> list[str]:
    return {"mrtm2": ["--k2prime", f"{k2p:.6f}"], "srtm2": ["--k2prime", f"{k2p:.6f}"],
            "logan_ref": ["--k2prime", f"{k2p:.6f}", "--tstar", str(phantom.TSTAR)],
            "ratio": ["--window", "45", "90"]}.get(model, [])


def _k2prime(workdir: Path) -> float:
    cache = workdir / "k2prime.json"
    if cache.is_file():
        return float(json.loads(cache.read_text())["k2prime"])
    k2p = float(phantom._inputs(workdir)[-1])
    cache.write_text(json.dumps({"k2prime": k2p}))
    return k2p


def _accuracy(workdir: Path, prefix: Path) -> dict:
    import nibabel as nib

    brain = np.load(workdir / "brain.npy")
    reference = np.load(workdir / "reference.npy")
    bp_true = np.load(workdir / "bp_true.npy")
    target = brain & ~reference
    bp = np.asarray(nib.load(f"{prefix}_bpnd.nii.gz").dataobj, dtype=float)
    flags = np.asarray(nib.load(f"{prefix}_flags.nii.gz").dataobj).astype(np.int64)
    return phantom._accuracy(bp[target], bp_true[target], flags[target])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/petbp_bench_map"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--reuse", action="store_true", help="reuse an existing phantom")
    args = parser.parse_args(argv)
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if args.reuse and (workdir / "phantom.json").is_file():
        info = json.loads((workdir / "phantom.json").read_text())
    else:
        info = phantom.build_phantom(workdir, args.noise, args.seed)
        (workdir / "k2prime.json").unlink(missing_ok=True)
    k2p = _k2prime(workdir)
    pet = info["pet"]
    loads = [os.getloadavg()[0]]
    base = [_timed([sys.executable, "-c", _BASELINE, pet, str(workdir / "baseline.nii.gz")])
            for _ in range(args.runs)]
    base_s = statistics.median(t for t, _, _ in base)
    base_cpu = statistics.median(c for _, c, _ in base)
    rows = [("baseline (import pipeline, load, save one 3D volume)", base_s, None, base_cpu,
             None, max(m for _, _, m in base), None)]
    for model in args.models:
        prefix = workdir / "maps" / model
        cmd = [sys.executable, "-m", "pipeline", "map", pet, "--reference-mask",
               str(workdir / "ref.nii.gz"), "--mask", str(workdir / "brain.nii.gz"),
               "--model", model, *_model_args(model, k2p), "-o", str(prefix)]
        runs = [_timed(cmd) for _ in range(args.runs)]
        times = [t for t, _, _ in runs]
        cpu = statistics.median(c for _, c, _ in runs)
        rows.append((f"petbp map {model}", statistics.median(times),
                     statistics.median(times) - base_s, cpu, cpu - base_cpu,
                     max(m for _, _, m in runs), _accuracy(workdir, prefix)))
        loads.append(os.getloadavg()[0])
        print(f"done {model}: {', '.join(f'{t:.2f}' for t in times)} s", file=sys.stderr)
    print(f"Phantom: {info['shape']} float32, {info['n_brain']} brain voxels "
          f"({info['n_reference']} reference), noise {info['noise']}, k2' {k2p:.5f}/min; "
          f"median of {args.runs} runs each\n")
    print("| run | wall (s) | wall beyond baseline (s) | CPU (s) | CPU beyond baseline (s) "
          "| peak RSS (MB) | median bias | median rel. bias (%) | RMSE | diverged "
          "| flagged, informative (RMSE) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, wall, beyond, cpu, cpu_beyond, rss, acc in rows:
        beyond_text = "" if beyond is None else f"{beyond:.2f}"
        cpu_text = "" if cpu_beyond is None else f"{cpu_beyond:.2f}"
        if acc is None:
            print(f"| {name} | {wall:.2f} | {beyond_text} | {cpu:.2f} | {cpu_text} | {rss:.0f} "
                  "| | | | | |")
            continue
        flagged = f"{acc['flagged']}" + (f" ({acc['flagged_rmse']:.3f})" if acc["flagged"]
                                         else "")
        print(f"| {name} | {wall:.2f} | {beyond_text} | {cpu:.2f} | {cpu_text} | {rss:.0f} "
              f"| {acc['median_bias']:+.4f} | {acc['median_rel_bias_pct']:+.2f} "
              f"| {acc['rmse']:.4f} | {acc['diverged']} | {flagged} |")
    print(f"\n1-min load average: {', '.join(f'{v:.2f}' for v in loads)} "
          f"(before each row; {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
