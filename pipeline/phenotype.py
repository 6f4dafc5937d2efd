"""Condition-level ratings from BIDS ``phenotype/<measure>.tsv`` (+ ``.json``).

A rating file has a ``participant_id`` column and one column per condition of the design,
named exactly as the condition (e.g. ``rejbase``, ``rejection``, ``accbase``,
``acceptance``): the rating each participant gave in that condition (say, desire for
social contact on a 0-100 scale). Other columns are allowed and ignored. The JSON sidecar
(optional) describes the measure (``MeasurementToolMetadata.Description``) and columns
(``Description``, ``Units``), as in BIDS.

Files are only read here; :mod:`pipeline.stats.ratings` turns them into rating changes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem

__all__ = ["Ratings", "phenotype_files", "read_ratings"]

log = logging.getLogger(__name__)

_MISSING = ["n/a", "N/A", "NA", "na", "NaN", "nan", ""]


@dataclass(frozen=True)
class Ratings:
    """One phenotype measure: ratings per participant and condition.

    Attributes
    ----------
    measure : str
        The file's name without ``.tsv`` (``phenotype/<measure>.tsv``).
    path : Path
    table : DataFrame
        ``participant_id`` (``sub-<label>``) and the numeric condition columns read.
    description : str
        From the sidecar, else empty.
    units : str
        From the sidecar (units of the condition columns), else empty.
    columns : dict
        The sidecar's column entries (``Description``, ``Units``, ...).
    """

    measure: str
    path: Path
    table: pd.DataFrame
    description: str = ""
    units: str = ""
    columns: dict[str, Any] = field(default_factory=dict)


def phenotype_files(bids_dir: str | PathLike) -> dict[str, Path]:
    """``measure -> phenotype/<measure>.tsv`` of a BIDS dataset (empty when there is none).

    Parameters
    ----------
    bids_dir : path-like
        Dataset root.
    """
    folder = Path(bids_dir) / "phenotype"
    if not folder.is_dir():
        return {}
    return {p.name[:-4]: p for p in sorted(folder.glob("*.tsv")) if p.is_file()}


def _sidecar(path: Path) -> tuple[str, str, dict[str, Any]]:
    """Description, units and column entries of ``<measure>.json`` ('' when absent)."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return "", "", {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("phenotype: %s is not readable JSON (%s); descriptions not used", side, err)
        return "", "", {}
    if not isinstance(data, dict):
        return "", "", {}
    tool = data.get("MeasurementToolMetadata")
    description = str(tool.get("Description", "")) if isinstance(tool, dict) else ""
    columns = {k: v for k, v in data.items() if isinstance(v, dict)
               and k != "MeasurementToolMetadata"}
    units = next((str(v["Units"]) for v in columns.values() if "Units" in v), "")
    return description, units, columns


def read_ratings(path: str | PathLike, conditions: Iterable[str] = (), *,
                 required: Iterable[str] = ()) -> Ratings:
    """Read one ``phenotype/<measure>.tsv``: participants and their ratings per condition.

    Parameters
    ----------
    path : path-like
        The TSV.
    conditions : iterable of str, default=()
        Condition names of the design: the columns read (those present).
    required : iterable of str, default=()
        Condition columns that must be present (those an analysis asks for).

    Returns
    -------
    Ratings

    Raises
    ------
    InputError
        If the file is unreadable, has no ``participant_id`` column or repeats a
        participant, lacks a required condition column, or a condition column holds a
        value that is not a number (``n/a`` marks a missing rating).
    """
    from pipeline.bids import check_label

    path = Path(path)
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, na_values=_MISSING,
                          keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as err:
        raise InputError(format_problem(path, f"cannot be read as a TSV table ({err})",
                                        "Save it as UTF-8 text with tab-separated columns.")
                         ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if "participant_id" not in raw.columns:
        raise InputError(format_problem(
            path, f"no participant_id column; columns are {list(raw.columns)}",
            "Name the first column participant_id (sub-<label>) and separate columns with "
            "tabs."))
    missing = [c for c in dict.fromkeys(required) if c not in raw.columns]
    if missing:
        found = [c for c in raw.columns if c != "participant_id"]
        raise InputError(format_problem(
            path, f"no column for condition(s) {', '.join(missing)} (columns: {found})",
            "Add one column per condition, named exactly as in design.conditions, with each "
            "participant's rating in that condition (n/a when missing)."))
    ids = []
    for row, value in enumerate(raw["participant_id"], start=2):
        if not isinstance(value, str) or not value.strip():
            raise InputError(format_problem(path, f"line {row}: participant_id is empty",
                                            "Give every row a participant_id such as sub-01."))
        label = value.strip().removeprefix("sub-")
        ids.append("sub-" + check_label(label, "sub", f"{path}, line {row}"))
    table = pd.DataFrame({"participant_id": ids})
    twice = sorted(set(table["participant_id"][table["participant_id"].duplicated()]))
    if twice:
        raise InputError(format_problem(path, f"participants listed more than once: {twice}",
                                        "Keep one row per participant."))
    for column in [c for c in dict.fromkeys(conditions) if c in raw.columns]:
        numbers = pd.to_numeric(raw[column], errors="coerce")
        bad = raw[column].notna() & numbers.isna()
        if bad.any():
            pairs = list(zip(table["participant_id"][bad], raw[column][bad], strict=True))
            examples = ", ".join(f"{pid}: {val!r}" for pid, val in pairs[:3]) \
                + (", ..." if len(pairs) > 3 else "")
            raise InputError(format_problem(
                path, f"column {column!r} must hold numeric ratings but has {examples}",
                "Use numbers (decimal point '.'), or n/a for a missing rating."))
        if np.isinf(numbers).any():
            raise InputError(format_problem(path, f"column {column!r} holds infinite values",
                                            "Use finite numbers or n/a."))
        table[column] = numbers.astype(float).to_numpy()
    description, units, columns = _sidecar(path)
    return Ratings(measure=path.name.removesuffix(".tsv"), path=path, table=table,
                   description=description, units=units, columns=columns)
