"""BIDS entities: the labels of PET file names, checked before they are used in a path.

Examples
--------
>>> from pathlib import Path
>>> parse_name(Path("sub-01_ses-1_task-rest_pet.nii.gz"))
{'sub': '01', 'ses': '1', 'task': 'rest'}
>>> normalize_labels(["sub-01", "02"], "sub")
['01', '02']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, format_problem

__all__ = ["ENTITY_ORDER", "IMAGE_SUFFIXES", "LABEL_PATTERN", "check_label", "normalize_labels",
           "parse_name"]

#: BIDS-PET filename entities, in the order they appear in a file name.
ENTITY_ORDER = ("sub", "ses", "task", "trc", "rec", "run")
#: What every BIDS label must match before petbp uses it in a path.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: Endings of a PET image's file name.
IMAGE_SUFFIXES = ("_pet.nii.gz", "_pet.nii")


def check_label(label: Any, entity: str, where: str | PathLike | None = None) -> str:
    """Return ``label`` if it is a valid BIDS label, else raise :class:`InputError`.

    Parameters
    ----------
    label : Any
        The label (its ``str``), without the ``<entity>-`` prefix.
    entity : str
        The entity it belongs to (``"sub"``, ``"task"``, ...), named in the error.
    where : str or path-like, default=None
        The file or setting it came from, named in the error.

    Returns
    -------
    str
        The label as text.

    Raises
    ------
    InputError
        If it has characters outside ``[A-Za-z0-9]``.

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

    Parameters
    ----------
    values : iterable, str or None
        Labels with or without their prefix; one label may be given alone.
    entity : str
        The entity (``"sub"``, ``"ses"``, ...): the prefix to strip.
    where : str or path-like, default=None
        Named in the error of an invalid label.

    Returns
    -------
    list of str or None
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


def parse_name(path: Path) -> dict[str, str]:
    """Entities of a ``*_pet.nii[.gz]`` or ``*_pet.json`` file name, labels validated.

    Parameters
    ----------
    path : Path
        The file; only its name is read.

    Returns
    -------
    dict of str to str
        Entity -> label, in the order of the name.

    Raises
    ------
    InputError
        If a part of the name is not ``key-label`` or an entity appears twice.
    """
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
