"""Preprocessed PET from a BIDS-derivatives folder (``preproc_dir``, e.g. PETPrep's output).

Each raw scan ``sub-01[_ses-1]_task-x[_run-1]_pet.nii.gz`` of ``bids_dir`` is analysed on the
derivative with the same entities in MNI152 space, PETPrep's naming:
``sub-01[_ses-1]_task-x[_run-1][_res-<r>]_space-MNI152<variant>[_res-<r>]_desc-preproc_pet.nii.gz``.
Every MNI152 template variant of TemplateFlow is accepted (``MNI152NLin2009cAsym``,
``MNI152NLin6Asym``, ``MNI152NLin2009aAsym``, ``MNI152NLin6Sym``, ``MNI152Lin``, ...): they
share the MNI152 coordinate frame the atlases are defined in. Timing comes from the
derivative's own sidecar (``<same name>.json``) where it has frame times, else from the
raw scan's sidecar; participants and scores always come from ``bids_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from pipeline.bids.entities import ENTITY_ORDER, parse_name
from pipeline.errors import InputError, format_problem

__all__ = ["PreprocImage", "check_preproc_dir", "check_preproc_location", "match_preprocessed",
           "missing_preprocessed"]

_SUFFIXES = ("_desc-preproc_pet.nii.gz", "_desc-preproc_pet.nii")
#: Entities a derivative may add to the raw scan's (besides space and desc).
_EXTRA = ("res", "cohort")


@dataclass(frozen=True)
class PreprocImage:
    """A preprocessed image: its path, template space and sidecar (None if absent)."""

    image: Path
    space: str
    sidecar: Path | None


def check_preproc_dir(preproc_dir: str | PathLike) -> Path:
    """Check that ``preproc_dir`` is a BIDS-derivatives dataset; return it as a Path.

    Parameters
    ----------
    preproc_dir : path-like
        The folder given as ``preproc_dir``.

    Raises
    ------
    InputError
        If it is missing, or has no ``dataset_description.json`` with
        ``DatasetType: derivative``.
    """
    root = Path(preproc_dir)
    if not root.is_dir():
        raise InputError(format_problem(
            root, "preproc_dir does not exist" if not root.exists() else "not a folder",
            "Give the folder of the preprocessed dataset (e.g. PETPrep's output), or set "
            "preproc_dir: null to analyse the raw images."))
    description = root / "dataset_description.json"
    try:
        kind = json.loads(description.read_text()).get("DatasetType")
    except FileNotFoundError:
        kind = "missing"
    except (OSError, ValueError, AttributeError):
        kind = "unreadable"
    if kind != "derivative":
        what = {"missing": "has no dataset_description.json",
                "unreadable": "has a dataset_description.json that is not a JSON object"}.get(
            kind, f"is not a derivatives dataset (DatasetType {kind!r})")
        raise InputError(format_problem(
            description if kind != "missing" else root, f"preproc_dir {what}",
            "Point preproc_dir at a BIDS-derivatives folder whose dataset_description.json "
            "says \"DatasetType\": \"derivative\" (PETPrep writes one)."))
    return root


def check_preproc_location(preproc_dir: str | PathLike, output_dir: str | PathLike) -> None:
    """Refuse a ``preproc_dir`` inside (or equal to) ``output_dir``: the workflow would read
    its own outputs.

    Parameters
    ----------
    preproc_dir : path-like
        The preprocessed dataset.
    output_dir : path-like
        petbp's output folder.

    Raises
    ------
    ConfigError
        Naming both folders.
    """
    from pipeline.errors import ConfigError

    pre, out = Path(preproc_dir).resolve(), Path(output_dir).resolve()
    if pre == out or out in pre.parents:
        raise ConfigError(format_problem(
            "config, preproc_dir", f"{preproc_dir} is inside output_dir ({output_dir})",
            "Keep the preprocessed data outside petbp's output folder, e.g. "
            "<bids_dir>/derivatives/petprep and output_dir <bids_dir>/derivatives/petbp."))


def _derivatives(root: Path) -> list[Path]:
    found = []
    for pattern in ("sub-*/pet/*_pet.nii*", "sub-*/ses-*/pet/*_pet.nii*"):
        found += [p for p in root.glob(pattern) if p.name.endswith(_SUFFIXES)
                  and not p.name.startswith(".")]
    return sorted(found)


def _key(entities: dict[str, str]) -> tuple:
    return tuple(entities.get(name) for name in ENTITY_ORDER)


def _sidecar(image: Path) -> Path | None:
    name = image.name.removesuffix(".gz").removesuffix(".nii") + ".json"
    path = image.with_name(name)
    return path if path.is_file() else None


def match_preprocessed(preproc_dir: str | PathLike, raw_images: list[Path]
                       ) -> tuple[dict[Path, PreprocImage], list[InputError]]:
    """Pair every raw scan with its MNI152 derivative.

    Parameters
    ----------
    preproc_dir : path-like
        The derivatives folder (checked with :func:`check_preproc_dir`).
    raw_images : list of Path
        Every raw ``*_pet.nii[.gz]`` of ``bids_dir`` (before the selection).

    Returns
    -------
    found : dict
        Raw image -> its :class:`PreprocImage`, or None when its derivatives are already
        reported in ``problems``; raw scans without any derivative are absent.
    problems : list of InputError
        One per derivative that matches no raw scan, per scan whose derivatives are only in
        other spaces, and per scan with more than one MNI152 derivative.
    """
    root = check_preproc_dir(preproc_dir)
    raw_keys: dict[tuple, Path] = {}
    for image in raw_images:
        try:
            raw_keys[_key(parse_name(image))] = image
        except InputError:
            continue  # reported by the raw scan's own checks
    mni: dict[Path, list[PreprocImage]] = {}
    other: dict[Path, list[Path]] = {}
    problems: list[InputError] = []
    for image in _derivatives(root):
        stem = image.name[: -len(next(s for s in _SUFFIXES if image.name.endswith(s)))]
        try:
            entities = parse_name(image.with_name(stem + "_pet.nii.gz"))
        except InputError as err:
            problems.append(err)
            continue
        space = entities.get("space")
        raw = raw_keys.get(_key(entities))
        if raw is None:
            problems.append(InputError(format_problem(
                image, "a preprocessed image without a raw scan in bids_dir (no "
                "sub/ses/task/run match)", "Add the raw scan and its sidecar to bids_dir, "
                "or remove this image from preproc_dir.")))
            continue
        if space is None or not space.startswith("MNI152"):
            other.setdefault(raw, []).append(image)
            continue
        mni.setdefault(raw, []).append(PreprocImage(image, space, _sidecar(image)))
    found: dict[Path, PreprocImage | None] = {}
    for raw, candidates in mni.items():
        if len(candidates) > 1:
            found[raw] = None  # reported here, not again as missing
            problems.append(InputError(format_problem(
                candidates[0].image, "more than one MNI152 image for this scan: "
                + ", ".join(c.image.name for c in candidates),
                "Keep one space-MNI152* desc-preproc image per scan in preproc_dir.")))
            continue
        found[raw] = candidates[0]
    for raw, images in other.items():
        if raw not in found and raw not in mni:
            found[raw] = None
            problems.append(InputError(format_problem(
                images[0], f"the preprocessed image of {raw.name} is in another space than "
                "MNI152 (petbp's atlases are in MNI152)",
                "Have the preprocessing write the image in an MNI152 space "
                "(PETPrep: --output-spaces MNI152NLin2009cAsym).")))
    return found, problems


def missing_preprocessed(raw: Path, preproc_dir: Path) -> InputError:
    """The error for a raw scan without a preprocessed image.

    Parameters
    ----------
    raw : Path
        The raw ``*_pet.nii[.gz]`` image.
    preproc_dir : Path
        The derivatives folder searched.
    """
    stem = raw.name.removesuffix(".gz").removesuffix(".nii").removesuffix("_pet")
    return InputError(format_problem(
        raw, f"no preprocessed image in {preproc_dir} (expected "
        f"{stem}_space-MNI152<variant>_desc-preproc_pet.nii.gz)",
        "Preprocess this scan too, exclude it with selection.exclude_*, or set "
        "preproc_dir: null."))

