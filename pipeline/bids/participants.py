"""``participants.tsv``: one row per subject with the scores to correlate or adjust for."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.bids.entities import check_label
from pipeline.errors import InputError, format_problem

if TYPE_CHECKING:  # pandas only when participants are read
    import pandas as pd

__all__ = ["numeric_score", "read_participants"]

_MISSING = ["n/a", "N/A", "NA", "na", "NaN", "nan", ""]


def read_participants(bids_dir: str | PathLike) -> pd.DataFrame:
    """Read ``participants.tsv`` of a BIDS dataset.

    Parameters
    ----------
    bids_dir : path-like
        Dataset root, or the ``participants.tsv`` file itself.

    Returns
    -------
    DataFrame
        ``participant_id`` as ``sub-<label>`` (labels checked against ``[A-Za-z0-9]+``);
        columns whose values are all numbers (or ``n/a``) as float, others as text with
        missing values as NaN.

    Raises
    ------
    InputError
        If the file is missing or unreadable, has no ``participant_id`` column, or lists a
        participant twice.
    """
    import pandas as pd

    path = Path(bids_dir)
    if path.is_dir() or not path.name.endswith(".tsv"):
        path = path / "participants.tsv"
    if not path.is_file():
        raise InputError(format_problem(
            path, "participants.tsv is missing",
            "Add a tab-separated participants.tsv with a participant_id column (sub-<label>) "
            "and one column per score."))
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, na_values=_MISSING,
                            keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(format_problem(path, f"cannot be read as a TSV table ({err})",
                                        "Save it as UTF-8 text with tab-separated columns.")
                         ) from err
    table.columns = [str(c).strip() for c in table.columns]
    if "participant_id" not in table.columns:
        hint = " (the file looks comma-separated)" if len(table.columns) == 1 and "," in \
            table.columns[0] else ""
        raise InputError(format_problem(
            path, f"no participant_id column{hint}; columns are {list(table.columns)}",
            "Name the first column participant_id and separate columns with tabs."))
    if table.empty:
        raise InputError(format_problem(path, "lists no participants",
                                        "Add one row per participant (sub-<label>, scores)."))
    ids = []
    for row, value in enumerate(table["participant_id"], start=2):
        if not isinstance(value, str):
            raise InputError(format_problem(path, f"line {row}: participant_id is empty",
                                            "Give every row a participant_id such as sub-01."))
        label = value.strip()
        label = label[4:] if label.startswith("sub-") else label
        ids.append("sub-" + check_label(label, "sub", f"{path}, line {row}"))
    table["participant_id"] = ids
    duplicated = sorted(set(table["participant_id"][table["participant_id"].duplicated()]))
    if duplicated:
        raise InputError(format_problem(path, f"participants listed more than once: {duplicated}",
                                        "Keep one row per participant."))
    for column in table.columns.drop("participant_id"):
        numbers = pd.to_numeric(table[column], errors="coerce")
        if numbers.notna().sum() == table[column].notna().sum() and numbers.notna().any():
            table[column] = numbers.astype(float)
    return table.reset_index(drop=True)


def numeric_score(participants: pd.DataFrame, column: str,
                  source: str | PathLike | None = "participants.tsv") -> pd.Series:
    """One score per participant as float, indexed by ``participant_id``.

    Parameters
    ----------
    participants : DataFrame
        From :func:`read_participants`.
    column : str
        The score's column name.
    source : str or path-like, default="participants.tsv"
        Named in error messages.

    Returns
    -------
    Series of float
        NaN where the value is ``n/a``.

    Raises
    ------
    InputError
        If the column is absent or holds a value that is not a number.
    """
    import pandas as pd

    if column not in participants.columns:
        available = [c for c in participants.columns if c != "participant_id"]
        raise InputError(format_problem(
            source, f"no column {column!r}; columns are {available}",
            f"Add a {column} column or choose one of the existing scores."))
    raw = participants[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & values.isna()
    if bad.any():
        examples = [f"{pid}: {val!r}" for pid, val in
                    zip(participants.loc[bad, "participant_id"], raw[bad], strict=True)][:3]
        raise InputError(format_problem(
            source, f"column {column!r} must hold numbers but has {', '.join(examples)}",
            "Use numbers (decimal point '.'), or n/a for missing values."))
    values = values.astype(float)
    if np.isinf(values).any():
        raise InputError(format_problem(source, f"column {column!r} holds infinite values",
                                        "Use finite numbers or n/a."))
    return pd.Series(values.to_numpy(), index=pd.Index(participants["participant_id"],
                                                       name="participant_id"), name=column)
