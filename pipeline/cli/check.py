"""``petbp check BIDS_DIR``: can this dataset be analysed? Reads, summarizes, writes nothing.

The dataset and config are read with the same functions the workflow uses
(:func:`pipeline.config.load_config`, :func:`pipeline.bids.inspect_scans`,
:func:`pipeline.bids.load_pet`, :func:`pipeline.bids.read_participants`), so a dataset that
passes here does not fail on input in the workflow. Every problem is collected and printed,
one block each, rather than stopping at the first.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import bids
from pipeline.bids.preprocessed import check_preproc_location
from pipeline.cli._check_analysis import frame_problems, orientation_problems, region_problems
from pipeline.config import load_config
from pipeline.errors import InputError, PetbpError, format_problem
from pipeline.group_check import check_groups_and_ratings, rating_scores
from pipeline.protocol import read_protocol

__all__ = ["ORDER", "add_parser", "check_dataset", "run"]

ORDER = 10


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``petbp check``."""
    parser = subparsers.add_parser(
        "check", help="check that a BIDS-PET dataset and config can be analysed",
        description="Read a BIDS-PET dataset and the config as the workflow would, and print "
        "a summary (subjects, scans, frames, units, decay, scores, space, conditions) or every "
        "problem found. Computes nothing and writes nothing. Exit status 0 when the dataset "
        "can be analysed, 1 otherwise.")
    parser.add_argument("bids_dir", metavar="BIDS_DIR", help="root of the BIDS-PET dataset")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="workflow config (default: the shipped config/config.yaml)")
    parser.add_argument("--participant-label", metavar="LABEL", nargs="+", default=None,
                        help="check only these subjects (01 or sub-01); replaces the "
                        "config's selection.subjects")
    parser.add_argument("--headers-only", action="store_true",
                        help="read headers and sidecars only; skip reading image data (no "
                        "check for truncated files or NaN values)")
    parser.set_defaults(func=run)
    return parser


class _Problems(list):
    """Problem messages; :meth:`attempt` runs a check and records its error."""

    def __init__(self, debug: bool = False, read_data: bool = True) -> None:
        super().__init__()
        self.debug = debug
        self.read_data = read_data

    def attempt(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except PetbpError as err:
            if self.debug:
                raise
            self.append(str(err))
            return None


def _required_scores(config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Score and covariate columns the config's statistics ask participants.tsv for."""
    specs = (config.get("statistics") or {}).get("correlations") or []
    scores, covariates = [], []
    for spec in specs if isinstance(specs, list) else []:
        if isinstance(spec, Mapping):
            if spec.get("score"):
                scores.append(str(spec["score"]))
            covariates += [str(c) for c in spec.get("covariates") or []]
    return sorted(set(scores)), sorted(set(covariates) - set(scores))


def _design_summary(config: Mapping[str, Any], scans: Sequence[bids.Scan],
                    problems: _Problems, native: set[str] = frozenset()) -> list[str]:
    """Conditions each scan contributes, and design problems (windows without frames,
    conditions without scans). Empty when the design stage is not installed. Scans in
    ``native`` (stems of scans to preprocess) get no region check on their raw grid: their
    regions are brought from MNI after registration."""
    try:
        from pipeline.design import load_design, scan_conditions
    except ImportError:
        return []
    design = problems.attempt(lambda: load_design(config))
    if design is None:
        return []
    lines, used = [], set()
    masks = _RegionMasks(config)
    for scan in scans:
        names = problems.attempt(lambda scan=scan: scan_conditions(config, scan))
        if names is None:
            continue
        used.update(names)
        lines.append(f"conditions of {scan.stem}: " + (", ".join(names) or "none (not used)"))
        protocol = problems.attempt(lambda scan=scan: read_protocol(
            scan.sidecar, scan.sidecar_path, scan_end=float(scan.frames.end[-1])))
        if protocol is not None:
            lines.append(f"protocol of {scan.stem}: {protocol.describe()}")
        # what the configured analysis asks of the scan in the conditions it holds
        windows = {n: design.conditions[n].window for n in names if n in design.conditions}
        if windows:
            problems += frame_problems(scan, config, windows)
            if problems.read_data and scan.stem not in native:
                problems += _region_signal(scan, masks, problems)
        for name in names:
            condition = design.conditions.get(name)
            window = getattr(condition, "window", None)
            if window is not None and not scan.frames.in_window(*window).any():
                problems.append(format_problem(
                    scan.sidecar_path, f"condition {name!r} uses minutes {window[0]:g}-"
                    f"{window[1]:g}, but no frame of {scan.stem} has its mid-time there (the "
                    f"scan covers {scan.frames.start[0]:g}-{scan.frames.end[-1]:g} min)",
                    f"Fix design.conditions.{name}.window in the config (minutes after "
                    "injection) or the frame times."))
    unused = [name for name in design.conditions if name not in used]
    if unused and scans:
        problems.append(format_problem(
            "config, design.conditions", f"no selected scan holds {', '.join(unused)}",
            "Check the task/session labels of those conditions against the scans listed "
            "above, or the selection."))
    return lines


#: Minutes: a first frame later than this, or a gap longer, is worth a warning.
_LATE_START_MIN = 5.0
_GAP_MIN = 5.0


def _timing_warnings(scans: Sequence[bids.Scan]) -> list[str]:
    """Things that do not stop the analysis but that a user should know about."""
    warnings = []
    for scan in scans:
        start = float(scan.frames.start[0])
        if start > _LATE_START_MIN:
            warnings.append(
                f"{scan.stem}: the first frame starts {start:g} min after injection; models "
                "that integrate from injection (SRTM, MRTM, Logan) will be biased: check "
                "InjectionStart, or use only the equilibrium ratio for this scan")
        gaps = scan.frames.start[1:] - scan.frames.end[:-1]
        if gaps.size and gaps.max() > _GAP_MIN:
            i = int(gaps.argmax())
            warnings.append(f"{scan.stem}: {gaps[i]:g} min gap between frames {i + 1} and "
                            f"{i + 2}; integrals across it are interpolated")
    for name, values in (("tracers", {s.tracer for s in scans}),
                         ("radionuclides", {s.radionuclide for s in scans})):
        if len(values) > 1:
            warnings.append(f"scans have different {name}: {sorted(map(str, values))}")
    return warnings


def _region_signal(scan: bids.Scan, masks: _RegionMasks, problems: _Problems) -> list[str]:
    """Regions of the config (reference first) without signal in this scan's image."""
    grid = problems.attempt(lambda: masks.on(scan))
    image = problems.attempt(lambda: bids.load_pet(scan)) if grid is not None else None
    return [] if image is None else region_problems(scan, image.data, grid)


class _RegionMasks:
    """The config's region masks, built once per image grid (None without a valid config)."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        self.config = config
        self.cache: dict[tuple, Any] = {}

    def on(self, scan: bids.Scan) -> Any:
        if not self.config:
            return None
        from pipeline.config import resolve_region_config
        from pipeline.regions import build_masks, load_region_config

        key = (tuple(scan.shape[:3]), scan.affine.round(6).tobytes())
        if key not in self.cache:
            region_set = load_region_config(resolve_region_config(self.config["regions"]))
            try:
                self.cache[key] = build_masks(region_set, tuple(scan.shape[:3]), scan.affine)
            except PetbpError as err:  # e.g. a region empty on this grid: name the image too
                self.cache[key] = err
        found = self.cache[key]
        if isinstance(found, PetbpError):
            raise InputError(format_problem(
                scan.image_path, "the regions cannot be built on this image's grid "
                f"({' '.join(str(found).split())})", "Check the voxel size and that the "
                "image is in MNI152 space, or adjust the region config."))
        return found


def _images_summary(scans: Sequence[bids.Scan], preproc_dir: str | None) -> list[str]:
    """Which image each scan's analysis reads."""
    if not preproc_dir:
        return ["images: the raw *_pet.nii[.gz] of the BIDS dataset"]
    return [f"image of {s.stem}: {s.image_path} (preprocessed; raw {s.raw_image_path.name} "
            "not read)" for s in scans]


def _space_fraction(scan: bids.Scan) -> float:
    from pipeline.space import check_overlap

    return check_overlap(scan.shape, scan.affine, source=scan.image_path)


def _frames_summary(scans: Sequence[bids.Scan]) -> list[str]:
    schedules = Counter((s.frames.n_frames, round(float(s.frames.start[0]), 2),
                         round(float(s.frames.end[-1]), 2)) for s in scans)
    return [f"{n} frames, {start:g}-{end:g} min after injection ({count} scans)"
            for (n, start, end), count in sorted(schedules.items())]


def _scores_summary(participants: Any) -> list[str]:
    lines = []
    for column in participants.columns.drop("participant_id"):
        values = participants[column]
        n = int(values.notna().sum())
        if values.dtype.kind == "f":
            lines.append(f"{column}: n={n}, range {values.min():g} to {values.max():g}")
        else:
            lines.append(f"{column}: n={n}, text ({', '.join(sorted(set(values.dropna()))[:4])})")
    return lines


def check_dataset(bids_dir: str | Path, config_path: str | Path | None = None,
                  participant_label: Sequence[str] | None = None, *,
                  read_data: bool = True, debug: bool = False) -> tuple[list[str], list[str]]:
    """Check a dataset and config; return (summary lines, problem messages).

    Parameters
    ----------
    bids_dir : path-like
        Dataset root.
    config_path : path-like, default=None
        Config file; None uses the shipped ``config/config.yaml``.
    participant_label : sequence of str, default=None
        Subjects to check (replaces ``selection.subjects``).
    read_data : bool, default=True
        Load every image (finds truncated files and NaN/Inf in the brain).
    debug : bool, default=False
        Raise the first problem (with its traceback) instead of collecting it.

    Returns
    -------
    summary : list of str
        Lines describing the dataset.
    problems : list of str
        One message per problem; empty when the dataset can be analysed.
    """
    problems = _Problems(debug, read_data)
    summary: list[str] = []
    bids_dir = Path(bids_dir)
    overrides: dict[str, Any] = {"bids_dir": str(bids_dir)}
    config = problems.attempt(lambda: load_config(config_path, overrides))
    summary.append(f"config: {config_path or 'config/config.yaml (shipped)'}"
                   + (" (valid)" if config else " (INVALID)"))
    selection = dict((config or {}).get("selection") or {})
    if participant_label:
        labels = problems.attempt(lambda: bids.normalize_labels(
            participant_label, "sub", "--participant-label"))
        if labels is None:
            return summary, problems
        selection["subjects"] = labels
    preproc_dir = (config or {}).get("preproc_dir")
    if preproc_dir and config:
        problems.attempt(lambda: check_preproc_location(preproc_dir, config["output_dir"]))
    found = problems.attempt(lambda: bids.inspect_scans(bids_dir, preproc_dir=preproc_dir,
                                                        **selection))
    if found is None:
        return summary, problems
    scans, scan_problems = found
    if scan_problems and debug:
        raise scan_problems[0]
    problems += [str(p) for p in scan_problems]
    if config:
        out = Path(config["output_dir"]).resolve()
        root = bids_dir.resolve()
        if out == root or (root in out.parents and (root / "derivatives") not in
                           [out, *out.parents]):
            problems.append(format_problem(
                "config, output_dir", f"{config['output_dir']} is inside the BIDS dataset",
                f"Write results elsewhere, e.g. output_dir={root / 'derivatives' / 'petbp'}."))
    from pipeline.cli._check_space import SpacePlans

    plans = SpacePlans((config or {}).get("preprocessing", "auto"), problems.attempt)
    fractions, warnings = [], []
    for scan in scans:
        problems += problems.attempt(lambda scan=scan: orientation_problems(scan.image_path)) \
            or []
        image = problems.attempt(lambda scan=scan: bids.load_pet(scan)) if read_data else None
        if image is not None:
            warnings += [f"{scan.stem}: {note[len('warning: '):]}" for note in image.notes
                         if note.startswith("warning: ")]
            if plans.add(scan, image) is not False:  # preprocessed (scanner space) or refused
                del image
                continue
        del image
        fraction = problems.attempt(lambda scan=scan: _space_fraction(scan))
        if fraction is not None:
            fractions.append(fraction)
    subjects = sorted({s.sub for s in scans})
    summary.append(f"subjects with PET scans: {len(subjects)}"
                   + (f" ({', '.join('sub-' + s for s in subjects[:8])}"
                      f"{', ...' if len(subjects) > 8 else ''})" if subjects else ""))
    groups = Counter((f"ses-{s.ses}" if s.ses else "no session", f"task-{s.task}")
                     for s in scans)
    summary.append(f"scans: {len(scans)} ("
                   + "; ".join(f"{ses}, {task}: {n}" for (ses, task), n in sorted(groups.items()))
                   + ")")
    summary += ["frames: " + line for line in _frames_summary(scans)]
    units = Counter(s.units for s in scans)
    converted = any(s.bq_scale != 1.0 for s in scans)
    summary.append("units: " + ", ".join(f"{u} ({n} scans)" for u, n in units.items())
                   + ("; converted to Bq/mL on load" if converted else ""))
    n_uncorrected = sum(not s.decay_corrected for s in scans)
    summary.append(f"decay: {len(scans) - n_uncorrected} scans decay-corrected, "
                   f"{n_uncorrected} to be corrected on load")
    tracers = Counter(f"{s.tracer or 'tracer not named'} ({s.radionuclide or 'radionuclide ?'}"
                      f"{f', half-life {s.half_life:g} min' if s.half_life else ''})"
                      for s in scans)
    summary.append("tracer: " + "; ".join(f"{t}: {n} scans" for t, n in tracers.items()))
    summary += plans.summary(read_data)
    if fractions:
        summary.append(f"field of view: {len(fractions)} images analysed in MNI space overlap "
                       f"the MNI brain ({100 * min(fractions):.0f}-{100 * max(fractions):.0f}% "
                       "covered)")
    summary.append("image data: " + ("read and checked for NaN/Inf and signal in every "
                                     "region" if read_data else "not read (--headers-only)"))
    summary += _images_summary(scans, preproc_dir)
    summary += [f"warning: {w}" for w in [*_timing_warnings(scans), *warnings]]
    participants = problems.attempt(lambda: bids.read_participants(bids_dir))
    if participants is not None:
        listed = set(participants["participant_id"])
        missing = [f"sub-{s}" for s in subjects if f"sub-{s}" not in listed]
        if missing:
            problems.append(format_problem(
                bids_dir / "participants.tsv", f"no row for {', '.join(missing)}",
                "Add a row per subject (n/a for unknown scores)."))
        summary += ["score " + line for line in _scores_summary(participants)]
        if config:
            scores, covariates = _required_scores(config)
            rated = rating_scores(config, participants, bids_dir)  # phenotype/ measures
            for column in (c for c in scores if c not in rated):
                problems.attempt(lambda c=column: bids.numeric_score(
                    participants, c, bids_dir / "participants.tsv"))
            for column in covariates:
                if column not in participants.columns:
                    problems.append(format_problem(
                        bids_dir / "participants.tsv", f"no covariate column {column!r}",
                        "Add it or remove it from statistics.correlations."))
    if config:
        summary += _design_summary(config, scans, problems, native=plans.preprocessed)
        if participants is not None:
            summary += check_groups_and_ratings(config, participants, bids_dir,
                                                [f"sub-{s}" for s in subjects],
                                                problems.attempt)
    # one message per problem, even when the same config error repeats per scan
    return summary, list(dict.fromkeys(problems))


def run(args: argparse.Namespace) -> int:
    """Run ``petbp check``; print the summary or the problems; return the exit status."""
    summary, problems = check_dataset(args.bids_dir, args.config, args.participant_label,
                                      read_data=not args.headers_only,
                                      debug=getattr(args, "debug", False))
    print(f"petbp check {args.bids_dir}")
    for line in summary:
        print(f"  {line}")
    if problems:
        print(f"\n{len(problems)} problem(s) found; the dataset cannot be analysed as it is:",
              file=sys.stderr)
        for problem in problems:
            print(f"\n- {problem}", file=sys.stderr)
        return 1
    print("\nOK: the dataset can be analysed.")
    return 0
