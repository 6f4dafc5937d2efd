"""File-level helpers of :mod:`pipeline.bids`: labels, file names, sidecars, headers.

Public names (``check_label``, ``normalize_labels``) are re-exported by :mod:`pipeline.bids`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem

__all__ = ["LABEL_PATTERN", "check_label", "missing_content", "normalize_labels"]

#: What every BIDS label must match before petbp uses it in a path.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
IMAGE_SUFFIXES = ("_pet.nii.gz", "_pet.nii")


def check_label(label: Any, entity: str, where: str | PathLike | None = None) -> str:
    """Return ``label`` if it is a valid BIDS label, else raise :class:`InputError`.

    Examples
    --------
    >>> check_label("01", "sub")
    '01'
    """
    text = str(label)
    if not LABEL_PATTERN.match(text):
        raise InputError(format_problem(
            where, f"{entity} label {text!r} has characters outside [A-Za-z0-9]",
            "BIDS labels may contain only letters and digits (no '-', '_', '.', '/' or spaces)."))
    return text


def normalize_labels(values: Iterable[Any] | str | None, entity: str,
                     where: str | PathLike | None = None) -> list[str] | None:
    """Strip an optional ``<entity>-`` prefix from each label and validate it.

    ``["sub-01", "02"]`` becomes ``["01", "02"]``; None stays None.
    """
    if values is None:
        return None
    if isinstance(values, str | int):
        values = [values]
    out = []
    for value in values:
        text = str(value)
        if text.startswith(f"{entity}-"):
            text = text[len(entity) + 1:]
        out.append(check_label(text, entity, where))
    return out


def _parse_name(path: Path) -> dict[str, str]:
    """Entities of a ``*_pet.nii[.gz]`` or ``*_pet.json`` file name (labels validated)."""
    name = path.name
    for ending in (*IMAGE_SUFFIXES, "_pet.json"):
        if name.endswith(ending):
            name = name[: -len(ending)]
            break
    entities: dict[str, str] = {}
    if not name:
        return entities
    for part in name.split("_"):
        key, sep, value = part.partition("-")
        if not sep or not key:
            raise InputError(format_problem(
                path, f"file name part {part!r} is not a BIDS entity (key-label)",
                "Name PET files sub-<l>[_ses-<l>][_task-<l>][_run-<l>]_pet.nii.gz."))
        if key in entities:
            raise InputError(format_problem(path, f"entity {key!r} appears twice in the name",
                                            "Give each entity once."))
        entities[key] = check_label(value, key, path)
    return entities


def missing_content(path: Path) -> str | None:
    """A problem text if ``path`` is a symlink whose target is missing (DataLad/git-annex)."""
    if path.is_symlink() and not path.exists():
        return ("is a broken symbolic link (with DataLad or git-annex: the file's content "
                "has not been downloaded)")
    return None


def _read_json(path: Path) -> dict:
    broken = missing_content(path)
    if broken:
        raise InputError(format_problem(path, broken, f"Run `datalad get {path}` (or "
                                        "`git annex get`), or copy the real file here."))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(format_problem(path, f"cannot read the sidecar ({err})",
                                        "Make it a readable UTF-8 JSON file.")) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(format_problem(
            path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})",
            "Fix the JSON syntax, e.g. with a JSON validator.")) from err
    if not isinstance(data, dict):
        raise InputError(format_problem(path, f"holds a JSON {type(data).__name__}, not an object",
                                        "A sidecar must be one JSON object of field: value."))
    return data


def _infer_root(image_path: Path) -> Path:
    """The BIDS root above ``sub-*/[ses-*/]pet/``, or the image's folder if not in that layout."""
    parts = image_path.parent
    if parts.name == "pet":
        up = parts.parent
        if up.name.startswith("ses-") and up.parent.name.startswith("sub-"):
            return up.parent.parent
        if up.name.startswith("sub-"):
            return up.parent
    return image_path.parent


def _folder_sidecars(folder: Path, listings: dict | None) -> list[tuple[Path, dict | None]]:
    """``*_pet.json`` files of a folder, sorted, with their entities (None: not a BIDS name).

    ``listings`` (folder -> result) caches folders shared by many scans during one discovery.
    """
    if listings is not None and folder in listings:
        return listings[folder]
    found: list[tuple[Path, dict | None]] = []
    for candidate in sorted(folder.glob("*_pet.json")):
        try:
            found.append((candidate, _parse_name(candidate)))
        except InputError:
            found.append((candidate, None))
    if listings is not None:
        listings[folder] = found
    return found


def _sidecar_chain(image_path: Path, root: Path, entities: Mapping[str, str],
                   listings: dict | None = None) -> list[Path]:
    """Applicable ``*_pet.json`` files, root first, down to the image's folder (inheritance).

    ``listings`` is an optional cache shared by the scans of one discovery (folder listings
    and resolved roots), so a folder above many scans is read once.
    """
    try:
        if listings is not None:
            resolved = listings.setdefault(("resolved", root), root.resolve())
        else:
            resolved = root.resolve()
        rel = image_path.parent.resolve().relative_to(resolved)
        folders = [root]
        for part in rel.parts:
            folders.append(folders[-1] / part)
    except ValueError:
        folders = [image_path.parent]
    chain = []
    for folder in folders:
        found = [(candidate, names) for candidate, names in _folder_sidecars(folder, listings)
                 if names is not None and all(entities.get(k) == v for k, v in names.items())]
        if len(found) > 1:
            # the most specific wins only if one file's entities include all the others'
            found.sort(key=lambda item: len(item[1]))
            if len(found[-1][1]) == len(found[-2][1]):
                raise InputError(format_problem(
                    found[-1][0], f"this sidecar and {found[-2][0].name} both apply to "
                    f"{image_path.name} at the same level",
                    "Keep one sidecar per scan and level (BIDS inheritance is ambiguous)."))
        chain.extend(candidate for candidate, _ in found)
    return chain


def _finite_seconds(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is not a (JSON) number of usable size."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _number_list(sidecar: Mapping, key: str, where: Path) -> list[float]:
    if key not in sidecar:
        raise InputError(format_problem(where, f"{key} is missing",
                                        f"Add {key}: one value per frame, in seconds."))
    value = sidecar[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    numbers = [_finite_seconds(v) for v in value] if isinstance(value, list) else [None]
    if not numbers or None in numbers:
        shown = str(value)
        raise InputError(format_problem(
            where, f"{key} must be a non-empty list of finite numbers; got "
            f"{shown[:60] + ('...' if len(shown) > 60 else '')!r}",
            f"Give {key} as a JSON list of numbers, one per frame, in seconds."))
    return numbers


def _optional_seconds(sidecar: Mapping, key: str, where: Path) -> float:
    value = sidecar.get(key, 0.0)
    if value is None:
        return 0.0
    number = _finite_seconds(value)
    if number is None:
        shown = repr(value)
        raise InputError(format_problem(
            where, f"{key} must be a number of seconds; got "
            f"{shown[:60] + ('...' if len(shown) > 60 else '')}",
            f"Set {key} to seconds relative to TimeZero."))
    return number


def _image_header(image_path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and voxel-to-mm affine from the NIfTI header (no data read)."""
    import nibabel as nib

    try:
        img = _nifti1_single(image_path)
        if img is None:
            img = nib.load(str(image_path))
        shape = tuple(int(d) for d in img.header.get_data_shape())
        return shape, np.asarray(img.affine, dtype=float)
    except Exception as err:  # nibabel raises many types for unreadable files
        raise InputError(format_problem(
            image_path, f"cannot read the NIfTI header ({type(err).__name__}: {err})",
            "Check that the file is a complete NIfTI-1/2 image (re-copy or re-export it).")
        ) from err


def _nifti1_single(image_path: Path) -> Any:
    """The image as a single-file NIfTI-1 (what ``nib.load`` gives for such files, without
    trying every image class first), or None for anything else (NIfTI-2, damaged files),
    which is left to ``nib.load`` and its usual messages."""
    import gzip

    import nibabel as nib

    try:
        opener = gzip.open if image_path.name.endswith(".gz") else open
        with opener(image_path, "rb") as stream:
            head = stream.read(348)
    except (OSError, EOFError):
        return None
    size_ok = head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c")  # 348, either byte order
    if len(head) < 348 or not size_ok or head[344:348] != b"n+1\x00":
        return None
    try:
        return nib.Nifti1Image.from_filename(str(image_path))
    except Exception:  # left to nib.load, which gives the usual error
        return None


def scans_table(scans: Iterable[Any]) -> pd.DataFrame:
    """One row per scan: stem, entities, image path, frames (minutes), units, decay, tracer."""
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


def _candidate_images(bids_dir: Path) -> list[Path]:
    found = []
    for pattern in ("sub-*/pet/*_pet.nii*", "sub-*/ses-*/pet/*_pet.nii*"):
        found += [p for p in bids_dir.glob(pattern)
                  if p.name.endswith(IMAGE_SUFFIXES) and not p.name.startswith(".")]
    return sorted(found)
