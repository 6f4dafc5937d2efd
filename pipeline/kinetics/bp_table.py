"""The group table of regional BP_ND: every scan's region fits in one long table.

:func:`write_bp_nd` is the workflow's ``collect_bp_nd`` step (``group/bp_nd.tsv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import pandas as pd

from pipeline.errors import InputError, format_problem
from pipeline.tables import provenance, read_table, write_table

__all__ = ["BP_COLUMNS", "collect_bp_nd", "write_bp_nd"]

#: Leading columns of ``group/bp_nd.tsv``, then every fit column.
BP_COLUMNS = ["participant_id", "session", "task", "run", "condition", "window_start",
              "window_end", "region", "model", "bp_nd", "r1", "k2", "k2prime", "n_voxels"]


def collect_bp_nd(fit_paths: Sequence[str | PathLike]) -> pd.DataFrame:
    """Concatenate per-scan fit tables into the long group table (:data:`BP_COLUMNS` first).

    Parameters
    ----------
    fit_paths : sequence of str or path-like
        Per-scan ``*_bp.tsv`` files (:func:`pipeline.kinetics.write_region_fits`).

    Raises
    ------
    InputError
        If there is no table to collect.
    """
    if not fit_paths:
        raise InputError(format_problem(None, "no region fit tables to collect",
                                        "Check that the design's tasks match the scans."))
    table = pd.concat([read_table(p) for p in fit_paths], ignore_index=True)
    for column in ("session", "run"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    rest = [c for c in table.columns if c not in BP_COLUMNS]
    return table[[c for c in BP_COLUMNS if c in table.columns] + rest]


def write_bp_nd(fit_paths: Sequence[str | PathLike], out_path: str | PathLike) -> Path:
    """Write ``group/bp_nd.tsv`` from every scan's fit tables.

    Parameters
    ----------
    fit_paths : sequence of str or path-like
        Per-scan ``*_bp.tsv`` files.
    out_path : str or path-like
        ``group/bp_nd.tsv`` to write (with its JSON sidecar).
    """
    table = collect_bp_nd(fit_paths)
    write_table(out_path, table, provenance(
        Description="BP_ND of every participant, scan, condition window, region and model",
        window_units="minutes", inputs=[str(p) for p in fit_paths]))
    return Path(out_path)
