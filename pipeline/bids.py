"""BIDS-PET input: find the PET scans of a dataset and read their sidecars and scores.

A scan is a 4D NIfTI ``sub-<l>/[ses-<s>/]pet/sub-<l>[_ses-<s>]..._pet.nii[.gz]`` with a JSON
sidecar. Sidecar fields are merged by BIDS inheritance: ``*_pet.json`` files higher up the tree
(dataset root, subject, session folder) whose entities are a subset of the scan's apply too,
and the file nearest the image wins. Frame times are converted to minutes once, here
(:class:`pipeline.frames.Frames`); every label is checked against ``[A-Za-z0-9]+`` before it
is used in a path. Images are loaded by :func:`load_pet` (in ``pipeline._bids_images``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline._bids_files import (
    IMAGE_SUFFIXES,
    LABEL_PATTERN,
    _candidate_images,
    _image_header,
    _infer_root,
    _number_list,
    _optional_seconds,
    _parse_name,
    _read_json,
    _sidecar_chain,
    check_label,
    missing_content,
    normalize_labels,
    scans_table,
)
from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames, activity_scale, normalize_radionuclide

if TYPE_CHECKING:  # pandas only where a table is built (keeps image reading fast)
    pass

__all__ = [
    "ENTITY_ORDER",
    "LABEL_PATTERN",
    "PetImage",
    "Scan",
    "check_label",
    "discover_scans",
    "inspect_scans",
    "load_pet",
    "normalize_labels",
    "numeric_score",
    "read_participants",
    "read_scan",
    "scans_table",
]

#: BIDS-PET filename entities, in the order they appear in a file name.
ENTITY_ORDER = ("sub", "ses", "task", "trc", "rec", "run")


@dataclass(frozen=True)
class Scan:
    """One PET scan: its entities, files and the facts petbp needs from its sidecar.

    Attributes
    ----------
    sub, ses, task, run : str or None
        BIDS labels (``sub`` always set); None when the entity is absent.
    image_path, sidecar_path : Path
        The 4D image and the nearest sidecar (other inherited sidecars are merged in).
    sidecar : dict
        All sidecar fields after BIDS inheritance.
    frames : Frames
        Frame start and end, minutes after injection (``InjectionStart`` subtracted).
    units : str
        The sidecar's ``Units``; ``bq_scale`` turns them into Bq/mL.
    tracer, radionuclide : str or None
        ``TracerName`` and the normalized ``TracerRadionuclide`` (``"C11"``); None if absent
        or (radionuclide only) unknown when no decay handling is needed.
    half_life : float or None
        Minutes; None when the radionuclide is unknown.
    decay_corrected : bool
        ``ImageDecayCorrected`` as stored in the file.
    decay_correction_time : float
        Minutes after injection to which the stored data are decay-corrected.
    shape : tuple of int
        Image dimensions from the header (x, y, z, t).
    affine : ndarray of shape (4, 4)
        Voxel-to-mm transform from the header.
    trc, rec : str or None
        Further BIDS-PET entities, kept in :attr:`stem` so scans stay distinct.
    """

    sub: str
    ses: str | None
    task: str | None
    run: str | None
    image_path: Path
    sidecar_path: Path
    sidecar: dict = field(repr=False)
    frames: Frames = field(repr=False)
    units: str
    bq_scale: float
    tracer: str | None
    radionuclide: str | None
    half_life: float | None
    decay_corrected: bool
    shape: tuple
    trc: str | None = None
    rec: str | None = None
    decay_correction_time: float = 0.0
    affine: np.ndarray | None = field(default=None, repr=False, compare=False)
    raw_image_path: Path | None = None

    @property
    def entities(self) -> dict[str, str]:
        """The entities that are set, in BIDS order, e.g. ``{"sub": "01", "task": "rest"}``."""
        values = {name: getattr(self, name) for name in ENTITY_ORDER}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def stem(self) -> str:
        """File-name stem of the scan, e.g. ``sub-01_ses-1_task-rejection_run-1``."""
        return "_".join(f"{k}-{v}" for k, v in self.entities.items())

    @property
    def rel_dir(self) -> str:
        """Folder of the scan relative to a BIDS or output root: ``sub-01/ses-1/pet``."""
        if self.ses is None:
            return f"sub-{self.sub}/pet"
        return f"sub-{self.sub}/ses-{self.ses}/pet"

    @property
    def participant_id(self) -> str:
        """``sub-<label>``, as in ``participants.tsv``."""
        return f"sub-{self.sub}"

    def __fspath__(self) -> str:
        """A Scan is a path to its image that carries its metadata: readers given it (e.g.
        :func:`load_pet`) need not find the sidecar again (a preprocessed image has none)."""
        return str(self.image_path)

    __str__ = __fspath__


def read_scan(image_path: str | PathLike, bids_root: str | PathLike | None = None) -> Scan:
    """Read one PET scan's entities, merged sidecar and header.

    Parameters
    ----------
    image_path : path-like
        A ``*_pet.nii[.gz]`` file.
    bids_root : path-like, default=None
        Dataset root for sidecar inheritance; None infers it from the ``sub-*/pet`` layout.

    Returns
    -------
    Scan

    Raises
    ------
    InputError
        Naming the file, when the name, sidecar or header cannot be used.
    """
    return _read_scan(Path(image_path), bids_root, None)


def _read_scan(image_path: Path, bids_root: str | PathLike | None,
               listings: dict | None, preproc: Any = None) -> Scan:
    """:func:`read_scan`; ``listings`` caches sidecar folders across the scans of a study.

    ``preproc`` (a :class:`pipeline._bids_preproc.PreprocImage`) replaces the raw image: its
    header is read instead (the raw image is not) and its sidecar overrides the raw one's."""
    broken = missing_content(image_path)
    if broken:
        raise InputError(format_problem(image_path, broken, f"Run `datalad get {image_path}` "
                                        "(or `git annex get`), or copy the real file here."))
    if not image_path.is_file():
        raise InputError(format_problem(image_path, "file not found", "Check the path."))
    if not image_path.name.endswith(IMAGE_SUFFIXES):
        raise InputError(format_problem(image_path, "not a *_pet.nii or *_pet.nii.gz file",
                                        "Give the 4D PET image of the scan."))
    entities = _parse_name(image_path)
    if "sub" not in entities:
        raise InputError(format_problem(image_path, "the file name has no sub-<label>",
                                        "Start the name with sub-<label>_."))
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise InputError(format_problem(
            image_path, f"unknown BIDS-PET entities {sorted(unknown)}",
            f"Use only {', '.join(ENTITY_ORDER)} in PET file names."))
    root = Path(bids_root) if bids_root is not None else _infer_root(image_path)
    chain = _sidecar_chain(image_path, root, entities, listings)
    if not chain:
        expected = image_path.name.replace(".nii.gz", ".json").replace(".nii", ".json")
        raise InputError(format_problem(
            image_path, "no JSON sidecar found (also none inherited from higher folders)",
            f"Add {expected} beside the image with FrameTimesStart, FrameDuration, Units, "
            "TracerRadionuclide and ImageDecayCorrected."))
    if preproc is not None:
        chain = [*chain, *([preproc.sidecar] if preproc.sidecar else [])]
    sidecar: dict[str, Any] = {}
    for path in chain:
        sidecar.update(_read_json(path))
    where = chain[-1]
    starts = _number_list(sidecar, "FrameTimesStart", where)
    durations = _number_list(sidecar, "FrameDuration", where)
    injection = _optional_seconds(sidecar, "InjectionStart", where)
    frames = Frames.from_bids([s - injection for s in starts], durations, source=where)
    units = sidecar.get("Units")
    if not isinstance(units, str):
        raise InputError(format_problem(
            where, "Units is missing" if units is None else f"Units must be text; got {units!r}",
            "Set Units to the activity unit of the image, e.g. Bq/mL or kBq/mL."))
    bq_scale = activity_scale(units, where)
    decay_corrected = sidecar.get("ImageDecayCorrected")
    if not isinstance(decay_corrected, bool):
        raise InputError(format_problem(
            where, "ImageDecayCorrected is missing" if decay_corrected is None else
            f"ImageDecayCorrected must be true or false; got {decay_corrected!r}",
            "Set ImageDecayCorrected to true if the image is decay-corrected, else false."))
    correction_time = _optional_seconds(sidecar, "ImageDecayCorrectionTime", where)
    nuclide_raw = sidecar.get("TracerRadionuclide")
    radionuclide = half_life = None
    # a decay-correction time other than injection only scales the data by a constant
    # (BP_ND is unaffected), so only uncorrected data need the half-life
    needs_decay = not decay_corrected
    if nuclide_raw is None or not isinstance(nuclide_raw, str):
        if needs_decay:
            raise InputError(format_problem(
                where, "TracerRadionuclide is missing or not text, but the image must be "
                "decay-corrected on load (ImageDecayCorrected is false)",
                "Set TracerRadionuclide, e.g. C11 or F18."))
    else:
        try:
            radionuclide = normalize_radionuclide(nuclide_raw)
        except InputError as err:
            if needs_decay:
                raise InputError(f"{where}: {err}") from err
        if radionuclide is not None:
            from pipeline.frames import HALF_LIFE_MIN

            half_life = HALF_LIFE_MIN[radionuclide]
    if abs(correction_time - injection) > 86400.0:
        raise InputError(format_problem(
            where, f"ImageDecayCorrectionTime is {correction_time:g} s, more than a day from "
            f"the injection ({injection:g} s)", "Give it in seconds relative to TimeZero."))
    tracer = sidecar.get("TracerName")
    raw_path, image_path = image_path, (preproc.image if preproc is not None else image_path)
    shape, affine = _image_header(image_path)
    if len(shape) != 4:
        raise InputError(format_problem(
            image_path, f"the image is {len(shape)}D with shape {shape}, not 4D (x, y, z, frames)",
            "Give the dynamic (4D) PET image; petbp needs every frame."))
    if shape[3] != frames.n_frames:
        raise InputError(format_problem(
            where, f"the sidecar gives {frames.n_frames} frames but {image_path.name} has "
            f"{shape[3]}",
            "Give one FrameTimesStart and FrameDuration per image frame, in seconds."))
    return Scan(
        sub=entities["sub"], ses=entities.get("ses"), task=entities.get("task"),
        run=entities.get("run"), image_path=image_path, sidecar_path=where, sidecar=sidecar,
        frames=frames, units=units, bq_scale=bq_scale,
        tracer=str(tracer) if tracer is not None else None, radionuclide=radionuclide,
        half_life=half_life, decay_corrected=decay_corrected, shape=shape, affine=affine,
        trc=entities.get("trc"), rec=entities.get("rec"),
        decay_correction_time=(correction_time - injection) / 60.0,
        raw_image_path=raw_path if preproc is not None else None,
    )


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
) -> tuple[list[Scan], list[InputError]]:
    """Like :func:`discover_scans`, but returns the readable scans and every problem found.

    With ``preproc_dir`` (a derivatives folder, :mod:`pipeline._bids_preproc`) each scan's
    image is its preprocessed MNI152 image there; the raw images are not read.

    Problems with the dataset as a whole (folder missing, no scans, selection matching
    nothing) are raised; problems with single scans are collected.
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
    images = _candidate_images(bids_dir)
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
        from pipeline._bids_preproc import match_preprocessed, missing_preprocessed

        preprocessed, problems = match_preprocessed(preproc_dir, images)
    seen_labels: dict[str, set[str]] = {k: set() for k in select}
    by_stem: dict[str, Path] = {}
    listings: dict = {}  # sidecar folders read once per discovery (pipeline._bids_files)
    for image in images:
        try:
            entities = _parse_name(image)
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
            scan = _read_scan(image, bids_dir, listings, preprocessed.get(image))
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
        their prefix, ``[A-Za-z0-9]+``); ``preproc_dir`` (see :func:`inspect_scans`).

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


# Participants and image loading live in private modules to keep files short.
from pipeline._bids_images import PetImage, load_pet  # noqa: E402
from pipeline._bids_participants import numeric_score, read_participants  # noqa: E402
