"""JSON sidecars of PET scans: reading them, BIDS inheritance, and their number fields.

A scan's sidecar fields come from every ``*_pet.json`` from the dataset root down to the
image's folder whose entities are a subset of the scan's (:func:`sidecar_chain`); the file
nearest the image wins. Times in sidecars are seconds (BIDS); :mod:`pipeline.bids.scan`
converts them to minutes once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.bids.entities import parse_name
from pipeline.errors import InputError, format_problem

__all__ = ["folder_sidecars", "infer_root", "missing_content", "number_list", "optional_seconds",
           "read_json", "sidecar_chain"]


def missing_content(path: Path) -> str | None:
    """A problem text if ``path`` is a symlink whose target is missing (DataLad/git-annex).

    Parameters
    ----------
    path : Path
        A file of the dataset.
    """
    if path.is_symlink() and not path.exists():
        return ("is a broken symbolic link (with DataLad or git-annex: the file's content "
                "has not been downloaded)")
    return None


def read_json(path: Path) -> dict:
    """One sidecar's fields.

    Parameters
    ----------
    path : Path
        A ``*_pet.json`` sidecar.

    Raises
    ------
    InputError
        If the file is not downloaded, unreadable, not JSON or not a JSON object.
    """
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


def infer_root(image_path: Path) -> Path:
    """The BIDS root above ``sub-*/[ses-*/]pet/``, or the image's folder if not in that layout.

    Parameters
    ----------
    image_path : Path
        A PET image.

    Examples
    --------
    >>> infer_root(Path("/data/study/sub-01/ses-1/pet/sub-01_ses-1_pet.nii.gz")).as_posix()
    '/data/study'
    """
    parts = image_path.parent
    if parts.name == "pet":
        up = parts.parent
        if up.name.startswith("ses-") and up.parent.name.startswith("sub-"):
            return up.parent.parent
        if up.name.startswith("sub-"):
            return up.parent
    return image_path.parent


def folder_sidecars(folder: Path, listings: dict | None) -> list[tuple[Path, dict | None]]:
    """``*_pet.json`` files of a folder, sorted, with their entities (None: not a BIDS name).

    ``listings`` (folder -> result) caches folders shared by many scans during one discovery.

    Parameters
    ----------
    folder : Path
        A folder of the dataset.
    listings : dict or None
        A cache shared by the scans of one discovery; None reads the folder every time.
    """
    if listings is not None and folder in listings:
        return listings[folder]
    found: list[tuple[Path, dict | None]] = []
    for candidate in sorted(folder.glob("*_pet.json")):
        try:
            found.append((candidate, parse_name(candidate)))
        except InputError:
            found.append((candidate, None))
    if listings is not None:
        listings[folder] = found
    return found


def sidecar_chain(image_path: Path, root: Path, entities: Mapping[str, str],
                  listings: dict | None = None) -> list[Path]:
    """Applicable ``*_pet.json`` files, root first, down to the image's folder (inheritance).

    Parameters
    ----------
    image_path : Path
        The PET image.
    root : Path
        The dataset root.
    entities : mapping
        The image's entities (:func:`pipeline.bids.entities.parse_name`).
    listings : dict, default=None
        A cache shared by the scans of one discovery (folder listings and resolved roots), so
        a folder above many scans is read once.

    Returns
    -------
    list of Path
        Root first; empty if no sidecar applies.

    Raises
    ------
    InputError
        If two sidecars of one folder apply equally (ambiguous inheritance).
    """
    try:
        rel = _resolved(image_path.parent, listings).relative_to(_resolved(root, listings))
        folders = [root]
        for part in rel.parts:
            folders.append(folders[-1] / part)
    except ValueError:
        folders = [image_path.parent]
    chain = []
    for folder in folders:
        found = [(candidate, names) for candidate, names in folder_sidecars(folder, listings)
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


def _resolved(folder: Path, listings: dict | None) -> Path:
    """``folder.resolve()``, cached in ``listings`` when given."""
    if listings is None:
        return folder.resolve()
    key = ("resolved", folder)
    if key not in listings:
        listings[key] = folder.resolve()
    return listings[key]


def _finite_seconds(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is not a (JSON) number of usable size."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _clipped(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters, with ``...`` when cut (values in messages)."""
    return text[:width] + ("..." if len(text) > width else "")


def number_list(sidecar: Mapping, key: str, where: Path) -> list[float]:
    """A sidecar field of one number per frame (seconds), e.g. ``FrameDuration``.

    Parameters
    ----------
    sidecar : mapping
        The merged sidecar fields.
    key : str
        The field, e.g. ``FrameTimesStart``.
    where : Path
        The sidecar named in errors.

    Returns
    -------
    list of float
        The values in seconds (a single number becomes a list of one).

    Raises
    ------
    InputError
        Naming ``where``, if the field is missing or not a non-empty list of finite numbers.
    """
    if key not in sidecar:
        raise InputError(format_problem(where, f"{key} is missing",
                                        f"Add {key}: one value per frame, in seconds."))
    value = sidecar[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    numbers = [_finite_seconds(v) for v in value] if isinstance(value, list) else [None]
    if not numbers or None in numbers:
        raise InputError(format_problem(
            where, f"{key} must be a non-empty list of finite numbers; got "
            f"{_clipped(str(value))!r}",
            f"Give {key} as a JSON list of numbers, one per frame, in seconds."))
    return numbers


def optional_seconds(sidecar: Mapping, key: str, where: Path) -> float:
    """A sidecar field of seconds that defaults to 0 (absent or null), e.g. ``InjectionStart``.

    Parameters
    ----------
    sidecar : mapping
        The merged sidecar fields.
    key : str
        The field, e.g. ``InjectionStart``.
    where : Path
        The sidecar named in errors.

    Returns
    -------
    float
        Seconds; 0.0 when absent or null.

    Raises
    ------
    InputError
        Naming ``where``, if the value is not a finite number.
    """
    value = sidecar.get(key, 0.0)
    if value is None:
        return 0.0
    number = _finite_seconds(value)
    if number is None:
        raise InputError(format_problem(
            where, f"{key} must be a number of seconds; got {_clipped(repr(value))}",
            f"Set {key} to seconds relative to TimeZero."))
    return number
