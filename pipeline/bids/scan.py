"""One PET scan: its entities, files, and the facts petbp needs from its sidecar and header.

Sidecar fields are merged by BIDS inheritance (:mod:`pipeline.bids.sidecars`); frame times are
converted from seconds to minutes once, here (:class:`pipeline.frames.Frames`); every label is
checked against ``[A-Za-z0-9]+`` before it is used in a path (:mod:`pipeline.bids.entities`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.bids.entities import ENTITY_ORDER, IMAGE_SUFFIXES, parse_name
from pipeline.bids.headers import image_header
from pipeline.bids.sidecars import (
    infer_root,
    missing_content,
    number_list,
    optional_seconds,
    read_json,
    sidecar_chain,
)
from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames, activity_scale, normalize_radionuclide

if TYPE_CHECKING:
    from pipeline.bids.preprocessed import PreprocImage

__all__ = ["Scan", "read_scan", "scan_with_image"]


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
        :func:`pipeline.bids.load_pet`) need not find the sidecar again (a preprocessed
        image has none)."""
        return str(self.image_path)

    __str__ = __fspath__


def read_scan(image_path: str | PathLike, bids_root: str | PathLike | None = None, *,
              preproc: PreprocImage | None = None, listings: dict | None = None) -> Scan:
    """Read one PET scan's entities, merged sidecar and header.

    Parameters
    ----------
    image_path : path-like
        A ``*_pet.nii[.gz]`` file.
    bids_root : path-like, default=None
        Dataset root for sidecar inheritance; None infers it from the ``sub-*/pet`` layout.
    preproc : PreprocImage, default=None
        A preprocessed image of the scan (:mod:`pipeline.bids.preprocessed`) that replaces the
        raw one: its header is read instead (the raw image is not) and its sidecar, if any,
        overrides the raw one's fields.
    listings : dict, default=None
        A cache of sidecar folders shared by the scans of one discovery.

    Returns
    -------
    Scan

    Raises
    ------
    InputError
        Naming the file, when the name, sidecar or header cannot be used.
    """
    image_path = Path(image_path)
    broken = missing_content(image_path)
    if broken:
        raise InputError(format_problem(image_path, broken, f"Run `datalad get {image_path}` "
                                        "(or `git annex get`), or copy the real file here."))
    if not image_path.is_file():
        raise InputError(format_problem(image_path, "file not found", "Check the path."))
    if not image_path.name.endswith(IMAGE_SUFFIXES):
        raise InputError(format_problem(image_path, "not a *_pet.nii or *_pet.nii.gz file",
                                        "Give the 4D PET image of the scan."))
    entities = parse_name(image_path)
    if "sub" not in entities:
        raise InputError(format_problem(image_path, "the file name has no sub-<label>",
                                        "Start the name with sub-<label>_."))
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise InputError(format_problem(
            image_path, f"unknown BIDS-PET entities {sorted(unknown)}",
            f"Use only {', '.join(ENTITY_ORDER)} in PET file names."))
    root = Path(bids_root) if bids_root is not None else infer_root(image_path)
    chain = sidecar_chain(image_path, root, entities, listings)
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
        sidecar.update(read_json(path))
    where = chain[-1]
    starts = number_list(sidecar, "FrameTimesStart", where)
    durations = number_list(sidecar, "FrameDuration", where)
    injection = optional_seconds(sidecar, "InjectionStart", where)
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
    correction_time = optional_seconds(sidecar, "ImageDecayCorrectionTime", where)
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
    shape, affine = image_header(image_path)
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


def scan_with_image(scan: Scan, image: str | PathLike, sidecar: str | PathLike | None) -> Scan:
    """The scan as analysed from ``image``: itself when ``image`` is its own image, else
    the scan read again with ``image`` (an MNI-space derivative, e.g. the frames that
    :mod:`pipeline.preprocess` resampled) replacing it and ``sidecar`` overriding the raw
    sidecar's fields (frames kept, units).

    Parameters
    ----------
    scan : Scan
        The scan as discovered.
    image : path-like
        The image a step reads.
    sidecar : path-like or None
        Its own sidecar, if any.

    Returns
    -------
    Scan
    """
    import re

    from pipeline.bids.preprocessed import PreprocImage

    if Path(image) == Path(scan.image_path):
        return scan
    space = re.search(r"_space-([A-Za-z0-9]+)", Path(image).name)
    preproc = PreprocImage(image=Path(image), space=space.group(1) if space else "MNI152",
                           sidecar=Path(sidecar) if sidecar else None)
    return read_scan(scan.raw_image_path or scan.image_path, preproc=preproc)
