"""Finding the PET scans of a BIDS dataset: selection, per-file checks, one table of scans.

With ``preproc_dir`` (a BIDS-derivatives folder, :mod:`pipeline.bids.preprocessed`) each scan
is analysed on its preprocessed MNI152 image there; the raw images are not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.bids.entities import IMAGE_SUFFIXES, normalize_labels, parse_name
from pipeline.bids.scan import Scan, read_scan
from pipeline.bids.scan_cache import ScanCache
from pipeline.errors import InputError, format_problem

if TYPE_CHECKING:  # pandas only where the table is built (keeps image reading fast)
    import pandas as pd

__all__ = ["candidate_images", "discover_scans", "inspect_scans", "scans_table"]


def inspect_scans(
    bids_dir: str | PathLike,
    *,
    subjects: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    exclude_subjects: Sequence[str] | None = None,
    exclude_sessions: Sequence[str] | None = None,
    exclude_tasks: Sequence[str] | None = None,
    preproc_dir: str | PathLike | None = None,
    cache_dir: str | PathLike | None = None,
) -> tuple[list[Scan], list[InputError]]:
    """Like :func:`discover_scans`, but returns the readable scans and every problem found.

    With ``preproc_dir`` (a derivatives folder, :mod:`pipeline.bids.preprocessed`) each scan's
    image is its preprocessed MNI152 image there; the raw images are not read.

    Problems with the dataset as a whole (folder missing, no scans, selection matching
    nothing) are raised; problems with single scans are collected.

    Parameters
    ----------
    bids_dir : path-like
        Dataset root.
    subjects, sessions, tasks, runs : sequence of str, default=None
        Labels to keep (with or without their ``sub-``/``ses-``/... prefix); None keeps all.
    exclude_subjects, exclude_sessions, exclude_tasks : sequence of str, default=None
        Labels to leave out.
    preproc_dir : path-like, default=None
        A BIDS-derivatives folder whose MNI152 images replace the raw ones.
    cache_dir : path-like, default=None
        Keep the scans read there and reuse each one while its image and every sidecar it
        came from are unchanged (:class:`pipeline.bids.scan_cache.ScanCache`); None reads
        every scan.

    Returns
    -------
    scans : list of Scan
        The scans that could be read, sorted by stem.
    problems : list of InputError
        One per scan (or preprocessed image) that cannot be used.

    Raises
    ------
    InputError
        If the folder is missing, holds no PET scans, or the selection matches nothing.
    """
    bids_dir = Path(bids_dir)
    select = {
        "sub": normalize_labels(subjects, "sub", "selection, subjects"),
        "ses": normalize_labels(sessions, "ses", "selection, sessions"),
        "task": normalize_labels(tasks, "task", "selection, tasks"),
        "run": normalize_labels(runs, "run", "selection, runs"),
    }
    drop = {
        "sub": normalize_labels(exclude_subjects, "sub", "selection, exclude_subjects") or [],
        "ses": normalize_labels(exclude_sessions, "ses", "selection, exclude_sessions") or [],
        "task": normalize_labels(exclude_tasks, "task", "selection, exclude_tasks") or [],
    }
    if not bids_dir.is_dir():
        raise InputError(format_problem(
            bids_dir, "the BIDS folder does not exist" if not bids_dir.exists() else
            "not a folder", "Give the root folder of a BIDS dataset (with sub-*/ folders)."))
    images = candidate_images(bids_dir)
    if not images:
        subs = [p.name for p in bids_dir.glob("sub-*") if p.is_dir()]
        what = (f"no PET scans (sub-*/[ses-*/]pet/*_pet.nii[.gz]) among {len(subs)} subject "
                "folders" if subs else "no sub-* folders, so no PET scans")
        raise InputError(format_problem(bids_dir, what,
                                        "Point bids_dir at a BIDS-PET dataset root."))
    scans: list[Scan] = []
    problems: list[InputError] = []
    preprocessed: dict = {}
    if preproc_dir is not None:
        from pipeline.bids.preprocessed import match_preprocessed, missing_preprocessed

        preprocessed, problems = match_preprocessed(preproc_dir, images)
    seen_labels: dict[str, set[str]] = {k: set() for k in select}
    by_stem: dict[str, Path] = {}
    listings: dict = {}  # sidecar folders read once per discovery (pipeline.bids.sidecars)
    cache = None if cache_dir is None else ScanCache(cache_dir, bids_dir, preproc_dir)
    read = read_scan if cache is None else cache.read
    for image in images:
        try:
            entities = parse_name(image)
        except InputError as err:
            problems.append(err)
            continue
        for key in seen_labels:
            if key in entities:
                seen_labels[key].add(entities[key])
        if any(sel is not None and entities.get(k) not in sel for k, sel in select.items()):
            continue
        if any(entities.get(k) in labels for k, labels in drop.items()):
            continue
        folder_sub = image.parent.parent if image.parent.parent.name.startswith("sub-") else \
            image.parent.parent.parent
        if folder_sub.name != f"sub-{entities.get('sub')}":
            problems.append(InputError(format_problem(
                image, f"the file names sub-{entities.get('sub')} but lies in {folder_sub.name}/",
                "Move or rename the file so its sub- label matches its folder.")))
            continue
        if preproc_dir is not None and preprocessed.get(image) is None:
            if image not in preprocessed:  # (None: its derivatives are reported already)
                problems.append(missing_preprocessed(image, Path(preproc_dir)))
            continue
        try:
            scan = read(image, bids_dir, listings=listings, preproc=preprocessed.get(image))
        except InputError as err:
            problems.append(err)
            continue
        if scan.stem in by_stem:
            problems.append(InputError(format_problem(
                image, f"same scan ({scan.stem}) as {by_stem[scan.stem]}",
                "Keep one image per scan (e.g. not both .nii and .nii.gz), or add a run- label.")))
            continue
        by_stem[scan.stem] = image
        scans.append(scan)
    for key, sel in select.items():
        missing = [label for label in sel or [] if label not in seen_labels[key]]
        if missing:
            raise InputError(format_problem(
                bids_dir, f"selected {key} labels {missing} match no PET scan",
                f"Choose from {sorted(seen_labels[key])} or remove them from the selection."))
    if not scans and not problems:
        raise InputError(format_problem(bids_dir, "the selection leaves no PET scans",
                                        "Loosen the subjects/sessions/tasks selection."))
    scans.sort(key=lambda s: s.stem)
    if cache is not None:
        cache.save()
    return scans, problems


def discover_scans(bids_dir: str | PathLike, **selection: Any) -> list[Scan]:
    """Find and read the PET scans of a BIDS dataset, sorted by stem.

    Parameters
    ----------
    bids_dir : path-like
        Dataset root.
    **selection
        ``subjects``, ``sessions``, ``tasks``, ``runs`` (labels to keep; None keeps all) and
        ``exclude_subjects``, ``exclude_sessions``, ``exclude_tasks`` (labels with or without
        their prefix, ``[A-Za-z0-9]+``); ``preproc_dir`` and ``cache_dir`` (see
        :func:`inspect_scans`).

    Raises
    ------
    InputError
        With every problem found, one block per file, if any scan cannot be used.
    """
    scans, problems = inspect_scans(bids_dir, **selection)
    if problems:
        header = f"{len(problems)} problem(s) in {bids_dir}:\n" if len(problems) > 1 else ""
        raise InputError(header + "\n".join(str(p) for p in problems))
    return scans


def scans_table(scans: Iterable[Scan]) -> pd.DataFrame:
    """One row per scan: stem, entities, image path, frames (minutes), units, decay, tracer.

    Parameters
    ----------
    scans : iterable of Scan
        E.g. from :func:`discover_scans`.

    Returns
    -------
    DataFrame
        Columns ``stem, sub, ses, task, run, image_path, n_frames, start_min, end_min, units,
        decay_corrected, tracer, radionuclide``.
    """
    import pandas as pd

    rows = [{
        "stem": s.stem, "sub": s.sub, "ses": s.ses, "task": s.task, "run": s.run,
        "image_path": str(s.image_path), "n_frames": s.frames.n_frames,
        "start_min": float(s.frames.start[0]), "end_min": float(s.frames.end[-1]),
        "units": s.units, "decay_corrected": s.decay_corrected, "tracer": s.tracer,
        "radionuclide": s.radionuclide,
    } for s in scans]
    columns = ["stem", "sub", "ses", "task", "run", "image_path", "n_frames", "start_min",
               "end_min", "units", "decay_corrected", "tracer", "radionuclide"]
    return pd.DataFrame(rows, columns=columns)


def candidate_images(bids_dir: Path) -> list[Path]:
    """Every ``sub-*/[ses-*/]pet/*_pet.nii[.gz]`` of a dataset (hidden files skipped), sorted.

    Parameters
    ----------
    bids_dir : Path
        Dataset root.
    """
    found = []
    for pattern in ("sub-*/pet/*_pet.nii*", "sub-*/ses-*/pet/*_pet.nii*"):
        found += [p for p in bids_dir.glob(pattern)
                  if p.name.endswith(IMAGE_SUFFIXES) and not p.name.startswith(".")]
    return sorted(found)
