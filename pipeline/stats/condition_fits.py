"""Condition-level BP_ND: fit each condition window of a scan, share k2' within a subject,
and gather every scan's fits into ``group/bp_nd.tsv``.

These are the ``write_*`` steps behind the workflow's ``fit_regions``, ``estimate_k2prime``
and ``collect_bp_nd`` rules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import kinetics
from pipeline.design import K2primeSettings, needs_k2prime
from pipeline.errors import InputError, format_problem
from pipeline.tables import (
    TacTable,
    provenance,
    read_json,
    read_table,
    read_tacs,
    sidecar_path,
    write_json,
    write_table,
)

__all__ = [
    "BP_COLUMNS",
    "collect_bp_nd",
    "estimate_k2prime",
    "fit_conditions",
    "write_bp_nd",
    "write_condition_fits",
    "write_subject_k2prime",
]

log = logging.getLogger(__name__)

#: Leading columns of ``group/bp_nd.tsv`` (DESIGN.md), then every fit column.
BP_COLUMNS = ["participant_id", "session", "task", "run", "condition", "window_start",
              "window_end", "region", "model", "bp_nd", "r1", "k2", "k2prime", "n_voxels"]


def _reference_column(tacs: TacTable, reference: str) -> np.ndarray:
    return tacs.column(reference)


def fit_conditions(tacs: TacTable, *, reference: str, model: str,
                   conditions: Sequence[tuple[str, tuple[float, float] | None]],
                   options: Mapping[str, Any] | None = None, k2prime: float | None = None,
                   half_life: float | None = None) -> pd.DataFrame:
    """Fit one model to every target region in each condition window of one scan.

    Parameters
    ----------
    tacs : TacTable
        The scan's TACs (minutes, Bq/mL), including the reference region.
    reference : str
        Reference region column.
    model : str
        A model of :data:`pipeline.kinetics.MODELS`.
    conditions : sequence of (name, window)
        Condition names and their windows (start, end minutes; None = whole scan).
    options : mapping, default=None
        Model options from the config; ``k2prime: shared`` is replaced by ``k2prime``,
        ``weights`` is a scheme name.
    k2prime : float, default=None
        The subject's shared k2' (1/min), used when the options ask for it.
    half_life : float, default=None
        Minutes; needed by ``counts`` weights.

    Returns
    -------
    DataFrame
        ``condition``, ``window_start``, ``window_end`` then the columns of
        :meth:`ModelFit.to_frame` (``region``, ``model``, ``bp_nd``, ...).
    """
    options = dict(options or {})
    if needs_k2prime(options):
        if k2prime is None or not np.isfinite(k2prime):
            raise InputError(format_problem(
                None, f"model {model} asks for the subject's shared k2' but none was given",
                "Run the estimate_k2prime step first (workflow) or give k2prime as a value."))
        options["k2prime"] = float(k2prime)
    weights = options.pop("weights", "uniform")
    ref = _reference_column(tacs, reference)
    targets = [r for r in tacs.regions if r != reference]
    values = tacs.tacs[targets].to_numpy(float)
    tables = []
    for name, window in conditions:
        result = kinetics.fit(model, tacs.frames, ref, values, weights=weights,
                              half_life=half_life,
                              window=None if window is None else tuple(window), **options)
        table = result.to_frame(targets)
        table.insert(0, "condition", name)
        table.insert(1, "window_start", np.nan if window is None else float(window[0]))
        table.insert(2, "window_end", np.nan if window is None else float(window[1]))
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _n_voxels(tac_path: Path) -> dict[str, float]:
    """Voxel count per region from a TAC sidecar, if it records them."""
    side = sidecar_path(tac_path)
    if not side.is_file():
        return {}
    info = read_json(side)
    regions = info.get("regions") or info.get("Regions") or {}
    counts: dict[str, float] = {}
    if isinstance(regions, Mapping):
        for name, entry in regions.items():
            if isinstance(entry, Mapping):
                value = entry.get("n_voxels", entry.get("voxels"))
                if value is not None:
                    counts[name] = float(value)
    elif isinstance(regions, list):
        for entry in regions:
            if isinstance(entry, Mapping) and "name" in entry:
                value = entry.get("n_voxels", entry.get("voxels"))
                if value is not None:
                    counts[entry["name"]] = float(value)
    return counts


def write_condition_fits(tacs_path: str | PathLike, out_path: str | PathLike, *,
                         reference: str, model: str,
                         conditions: Sequence[tuple[str, Sequence[float] | None]],
                         entities: Mapping[str, Any], options: Mapping[str, Any] | None = None,
                         k2prime_path: str | PathLike | None = None,
                         half_life: float | None = None) -> Path:
    """Read a scan's TACs, fit every condition window, write ``..._model-<m>_bp.tsv``.

    ``entities`` (``participant_id``, ``session``, ``task``, ``run``) lead each row; the
    JSON sidecar records the model, options, windows, k2' and input.
    """
    tacs_path = Path(tacs_path)
    k2p = None
    if k2prime_path is not None:
        k2p = float(read_json(k2prime_path)["k2prime"])
    conds = [(name, None if w is None else (float(w[0]), float(w[1]))) for name, w in conditions]
    table = fit_conditions(read_tacs(tacs_path), reference=reference, model=model,
                           conditions=conds, options=options, k2prime=k2p,
                           half_life=half_life)
    for key in ("run", "task", "session", "participant_id"):
        table.insert(0, key, entities.get(key))
    table.insert(table.columns.get_loc("k2prime") + 1, "n_voxels",
                 table["region"].map(_n_voxels(tacs_path)).astype(float))
    write_table(out_path, table, provenance(
        Description=f"Regional BP_ND of one scan per condition window, model {model}",
        model=model, options=dict(options or {}), reference_region=reference,
        conditions={n: w for n, w in conds}, k2prime=k2p, inputs=[str(tacs_path)]))
    return Path(out_path)


def estimate_k2prime(tac_tables: Sequence[TacTable], settings: K2primeSettings, *,
                     reference: str) -> tuple[float, list[float]]:
    """A subject's shared k2' (1/min): median of per-scan estimates over high-binding regions.

    Each scan gives the median of SRTM (or MRTM) k2' over ``settings.regions`` within
    ``settings.window`` (the other model when the first gives no clean fit); the subject's
    value is the median over scans that gave one.

    Returns
    -------
    k2prime : float
    per_scan : list of float
    """
    from pipeline.kinetics.mrtm import k2prime_from_mrtm
    from pipeline.kinetics.srtm2 import k2prime_from_srtm

    first, second = (k2prime_from_srtm, k2prime_from_mrtm) if settings.model == "srtm" \
        else (k2prime_from_mrtm, k2prime_from_srtm)
    per_scan, problems = [], []
    for tacs in tac_tables:
        missing = [r for r in settings.regions if r not in tacs.regions]
        if missing:
            raise InputError(format_problem(
                tacs.frames.source or None, f"k2prime.regions {missing} are not in the TAC table",
                f"Choose among: {', '.join(tacs.regions)}."))
        ref = tacs.column(reference)
        values = tacs.tacs[list(settings.regions)].to_numpy(float)
        value = np.nan
        for estimate in (first, second):  # the other first-pass model if one gives nothing
            try:
                value = estimate(tacs.frames, ref, values, window=settings.window)
                break
            except InputError as err:
                problems.append(f"{tacs.frames.source or 'scan'}: {err}")
        per_scan.append(value)
    good = [v for v in per_scan if np.isfinite(v)]
    if not good:
        raise InputError(format_problem(
            None, "no scan of this subject gives a usable k2' (" + "; ".join(problems) + ")",
            "Check the subject's TACs and k2prime.regions, or give k2prime as a value."))
    for problem in problems:
        log.warning("k2': %s", problem)
    return float(np.median(good)), per_scan


def write_subject_k2prime(tac_paths: Sequence[str | PathLike], out_path: str | PathLike, *,
                          settings: K2primeSettings, reference: str) -> Path:
    """Estimate a subject's shared k2' from all its scans and write it as JSON."""
    tables = [read_tacs(p) for p in tac_paths]
    value, per_scan = estimate_k2prime(tables, settings, reference=reference)
    log.info("k2' = %.4f /min (per scan: %s)", value, ", ".join(f"{v:.4f}" for v in per_scan))
    write_json(out_path, provenance(
        Description="Subject's shared reference efflux rate k2' (1/min): median over scans "
        "of the median first-pass estimate over high-binding regions",
        k2prime=value, per_scan=dict(zip(map(str, tac_paths), per_scan, strict=True)),
        model=settings.model, regions=list(settings.regions),
        window=None if settings.window is None else list(settings.window)))
    return Path(out_path)


def collect_bp_nd(fit_paths: Sequence[str | PathLike]) -> pd.DataFrame:
    """Concatenate per-scan fit tables into the long group table (DESIGN.md columns first)."""
    if not fit_paths:
        raise InputError(format_problem(None, "no region fit tables to collect",
                                        "Check that the design's tasks match the scans."))
    table = pd.concat([read_table(p) for p in fit_paths], ignore_index=True)
    for column in ("session", "run"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    rest = [c for c in table.columns if c not in BP_COLUMNS]
    return table[[c for c in BP_COLUMNS if c in table.columns] + rest]


def write_bp_nd(fit_paths: Sequence[str | PathLike], out_path: str | PathLike) -> Path:
    """Write ``group/bp_nd.tsv`` from every scan's fit tables."""
    table = collect_bp_nd(fit_paths)
    write_table(out_path, table, provenance(
        Description="BP_ND of every participant, scan, condition window, region and model",
        window_units="minutes", inputs=[str(p) for p in fit_paths]))
    return Path(out_path)
