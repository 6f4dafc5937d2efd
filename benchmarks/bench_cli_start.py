"""Start-up time of ``petbp --version`` and ``petbp --help`` against a bare Python start.

Usage: python benchmarks/bench_cli_start.py [--runs 15] [--petbp PATH]

Each command runs ``--runs`` times, interleaved (so a change of machine load hits all of them
alike); prints the median and quartiles of the wall time, the medians' difference from
``python -c pass`` (the interpreter of the same venv) and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--petbp", default=str(Path(sys.executable).with_name("petbp")))
    args = parser.parse_args()
    python = str(Path(args.petbp).with_name("python"))
    commands = {"python -c pass": [python, "-c", "pass"],
                "petbp --version": [args.petbp, "--version"],
                "petbp --help": [args.petbp, "--help"]}
    for cmd in commands.values():  # warm the file cache
        _time(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    load_after = os.getloadavg()[0]
    base = statistics.median(times["python -c pass"])
    print(f"{args.runs} runs each; 1-min load {load_before:.2f} before, {load_after:.2f} after")
    for name, values in times.items():
        q1, med, q3 = statistics.quantiles(values, n=4)
        extra = "" if name.startswith("python") else f"  (+{med - base:.3f} s over bare Python)"
        print(f"{name:16s} median {med:.3f} s  (quartiles {q1:.3f}-{q3:.3f}){extra}")


if __name__ == "__main__":
    main()
