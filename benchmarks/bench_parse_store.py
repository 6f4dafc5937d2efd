"""A new study's first parse and its TAC steps' image reads, with and without the parse
storing the loaded images (a benchmark, not a test).

The workflow's first parse of a new study decodes every image to detect its space
(:func:`pipeline.preprocess.plan.cached_image_spaces`, two threads); each ``extract_tacs``
job then loads its scan (:func:`pipeline.bids.image_cache.load_cached_pet`). Before, that
was a second decompression; now the parse stores each scan analysed as is in the
loaded-image cache and the job memory-maps it. Per round, on the study's scans:

* ``parse_s``: ``cached_image_spaces`` into an empty evidence folder (the parse's detection),
  without (``before``) or with (``after``) ``loaded_cache``;
* ``reads_s``: ``load_cached_pet`` of every scan into the loaded-image cache, one after the
  other (what the 36 ``extract_tacs`` jobs do with the image): before, a decompression, the
  conversion and writing the copy for the maps; after, a memory map of the parse's copy;
* ``total_s``: their sum.

Rounds alternate before/after (``--rounds`` of each); medians with the 1-minute load.

Usage::

    python benchmarks/bench_parse_store.py --bids /tmp/speed_bench/study/bids --rounds 3

Working files go to ``--workdir`` (default ``benchmarks/out/parse_store/``; about 101 MB per
2 mm scan while an ``after`` round runs, deleted after it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

__all__ = ["main", "one_round"]

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "parse_store"


def one_round(scans: list, workdir: Path, store: bool) -> dict[str, float]:
    """Times (s) of the parse's detection and of every scan's read, for one round."""
    from pipeline.bids.image_cache import load_cached_pet
    from pipeline.preprocess.plan import cached_image_spaces

    shutil.rmtree(workdir, ignore_errors=True)
    loaded = workdir / "pet"
    start = time.perf_counter()
    found = cached_image_spaces(scans, workdir / "space", loaded_cache=loaded if store else None)
    parse = time.perf_counter() - start
    bad = [f for f in found if not hasattr(f, "space") or f.space != "mni"]
    if bad:
        raise RuntimeError(f"not every scan is analysed as is: {bad[:3]}")
    start = time.perf_counter()
    for scan in scans:
        image = load_cached_pet(scan, loaded)
        float(image.data[..., -1].sum(dtype="float64"))  # touch the last frame's pages
        del image
    reads = time.perf_counter() - start
    shutil.rmtree(workdir, ignore_errors=True)
    return {"parse_s": parse, "reads_s": reads, "total_s": parse + reads}


def main(argv: list[str] | None = None) -> int:
    """Command line; prints a markdown table."""
    from pipeline.bids import discover_scans

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=OUT)
    args = parser.parse_args(argv)
    scans = discover_scans(args.bids)
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name in ("before", "after"):
            load = os.getloadavg()[0]
            row = one_round(scans, args.workdir.resolve(), store=name == "after")
            results[name].append(row)
            print(f"{name}: parse {row['parse_s']:.1f} s, reads {row['reads_s']:.1f} s, "
                  f"total {row['total_s']:.1f} s (1-min load {load:.2f} -> "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
    print(f"\n{len(scans)} scans, medians of {args.rounds} rounds\n")
    print(f"| | parse (s) | {len(scans)} reads (s) | total (s) |\n|---|---:|---:|---:|")
    for name, rows in results.items():
        cells = " | ".join(f"{statistics.median(r[k] for r in rows):.1f}"
                           for k in ("parse_s", "reads_s", "total_s"))
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
