"""The region-fit step: one model, every target region, each condition window of a scan.

One step serves ``petbp fit``, the workflow's ``fit_regions`` rule and (through the curves
it writes) the report. :func:`write_region_fits` reads a TAC table (``frame_start``,
``frame_end`` in seconds, one column per region in Bq/mL), fits every region except the
reference in each condition window, and writes three files:

- ``OUT.tsv``: one row per condition and region: the scan's entities (workflow), then
  ``condition, window_start, window_end`` (minutes), ``region, model, bp_nd, r1, k2,
  k2prime, n_voxels``, then the rest of :data:`~pipeline.kinetics.result.FIT_COLUMNS`
  (the same for every model);
- ``OUT.json``: how it was made: model, resolved options, reference region, windows, k2'
  and where it came from, the methods sentence, column descriptions, input;
- :func:`curves_path` (``<stem>_fits.tsv``): measured and fitted curves, long format
  (``condition, region, frame_start, frame_end, measured, fitted, reference, used``), so
  the report plots the fits without refitting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem
from pipeline.kinetics.k2prime import (
    FIRST_PASS,
    estimate_k2prime_from_tacs,
    read_shared_k2prime,
    resolve_k2prime,
)
from pipeline.kinetics.registry import describe_fit, fit, get_model
from pipeline.kinetics.release import release_columns, scan_release_free, segment_boundaries
from pipeline.kinetics.result import COLUMN_DESCRIPTIONS, ModelFit
from pipeline.kinetics.weights import frame_weights
from pipeline.tables import TacTable, provenance, read_json, read_tacs, sidecar_path, write_table

__all__ = ["RegionFits", "curves_path", "fit_conditions", "fit_regions", "write_region_fits"]

#: Condition name used when no condition windows are given.
WHOLE_SCAN = "all"

Conditions = Sequence[tuple[str, Sequence[float | None] | None]]


@dataclass(frozen=True)
class RegionFits:
    """Fits of one model to every target region of a scan, per condition window.

    Attributes
    ----------
    table : DataFrame
        ``condition, window_start, window_end`` (minutes, NaN = scan start/end), then
        :data:`~pipeline.kinetics.result.FIT_COLUMNS`, one row per condition and region.
    curves : DataFrame
        ``condition, region, frame_start, frame_end`` (seconds), ``measured, fitted,
        reference`` (Bq/mL; fitted NaN outside the fit) and ``used``.
    fits : dict of str to ModelFit
        The fit of each condition.
    k2prime : dict of str to float or None
        k2' (1/min) used in each condition (None where the model uses none).
    k2prime_source : str or None
        Where k2' came from (``given``, the subject's shared value, or an estimate).
    """

    table: pd.DataFrame
    curves: pd.DataFrame
    fits: dict[str, ModelFit]
    k2prime: dict[str, float | None]
    k2prime_source: str | None


def _conditions(conditions: Conditions | None) -> list[tuple[str, tuple | None]]:
    if not conditions:
        return [(WHOLE_SCAN, None)]
    return [(str(name), None if w is None else tuple(None if v is None else float(v)
                                                      for v in w))
            for name, w in conditions]


def fit_regions(tacs: TacTable, *, reference: str, model: str,
                conditions: Conditions | None = None, options: Mapping[str, Any] | None = None,
                k2prime: float | None = None, k2prime_regions: Sequence[str] | None = None,
                half_life: float | None = None, null_tacs: TacTable | None = None
                ) -> RegionFits:
    """Fit ``model`` to every region of ``tacs`` except ``reference``, in each window.

    Parameters
    ----------
    tacs : TacTable
        The scan's TACs (minutes, Bq/mL), including the reference region.
    reference : str
        Reference region column.
    model : str
        A model of :data:`pipeline.kinetics.MODELS`.
    conditions : sequence of (name, window), default=None
        Condition names and windows (start, end minutes; None = whole scan); None fits
        the whole scan once, as condition ``all``.
    options : mapping, default=None
        Model options (as under ``models.<model>`` in the config): ``weights`` is a
        scheme name, ``k2prime`` a number, ``"shared"`` or absent
        (:func:`pipeline.kinetics.k2prime.resolve_k2prime`).
    k2prime : float, default=None
        The subject's shared k2' (1/min), used when the options say ``shared``.
    k2prime_regions : sequence of str, default=None
        Regions whose first-pass fits estimate k2' when a model that needs it has none
        (default: every target region), in each window.
    half_life : float, default=None
        Radionuclide half-life, minutes; needed by ``counts`` weights.
    null_tacs : TacTable, default=None
        The scan with the release taken out (:func:`pipeline.kinetics.release.
        release_free_tacs`): each window is fitted on it too, with the same options and
        k2', and its BP_ND goes into the table's ``bp_nd_null`` (NaN without it).

    Returns
    -------
    RegionFits
    """
    ref = tacs.column(reference)
    targets = [r for r in tacs.regions if r != reference]
    if not targets:
        raise InputError(format_problem(
            tacs.frames.source or None, f"the TAC table has no region besides the reference "
            f"{reference!r}", "Add target regions to the TAC table."))
    get_model(model)
    values = tacs.tacs[targets].to_numpy(float)
    options = dict(options or {})
    if "window" in options:  # a window given as an option: one condition
        window = options.pop("window")
        if conditions:
            raise InputError(format_problem(None, "a window option and condition windows "
                                            "were both given", "Give one of them."))
        conditions = [(WHOLE_SCAN if window is None else "window", window)]
    scheme = options.pop("weights", "uniform") or "uniform"
    chosen = list(k2prime_regions or targets)
    missing = [r for r in chosen if r not in targets]
    if missing:
        raise InputError(format_problem(
            tacs.frames.source or None, f"k2prime_regions {missing} are not target regions",
            f"Choose among: {', '.join(targets)}."))
    chosen_tacs = values[:, [targets.index(r) for r in chosen]]
    what = (f"all {len(chosen)} target regions" if k2prime_regions is None
            else ", ".join(chosen))
    fits: dict[str, ModelFit] = {}
    null_bp: dict[str, np.ndarray] = {}
    k2p_used: dict[str, float | None] = {}
    source = None
    for name, window in _conditions(conditions):
        def estimate(method: str, window=window) -> tuple[float, str]:
            w = frame_weights(scheme, tacs.frames, ref, half_life=half_life)
            value, used = estimate_k2prime_from_tacs(
                tacs.frames, ref, chosen_tacs, method=method, window=window,
                t_star=options.get("t_star"), weights=w)
            return value, f"median {FIRST_PASS[used]} over {what}"

        resolved, source = resolve_k2prime(model, options, shared=k2prime, estimate=estimate)
        result = fit(model, tacs.frames, ref, values, weights=scheme, half_life=half_life,
                     window=window, **resolved)
        fits[name] = result
        k2p_used[name] = resolved.get("k2prime")
        null_bp[name] = np.full(len(targets), np.nan) if null_tacs is None else fit(
            model, tacs.frames, ref, null_tacs.tacs[targets].to_numpy(float), weights=scheme,
            half_life=half_life, window=window, **resolved).bp_nd
    table = _table(fits, targets)
    table.insert(table.columns.get_loc("bp_nd") + 1, "bp_nd_null",
                 np.concatenate([null_bp[name] for name in fits]))
    return RegionFits(table, _curves(tacs, ref, values, fits, targets), fits, k2p_used,
                      source)


def fit_conditions(tacs: TacTable, *, reference: str, model: str, conditions: Conditions,
                   options: Mapping[str, Any] | None = None, k2prime: float | None = None,
                   half_life: float | None = None,
                   null_tacs: TacTable | None = None) -> pd.DataFrame:
    """The fit table of :func:`fit_regions` (``condition``, ``window_start``, ... columns).

    For callers that only need the numbers, e.g. the in-memory region study.

    Parameters
    ----------
    tacs : TacTable
        One scan's TACs (frames in minutes, Bq/mL).
    reference : str
        The reference region's column.
    model : str
        A model of :data:`pipeline.kinetics.MODELS`.
    conditions : sequence of (str, window)
        Condition name and window (minutes, or None for the whole scan).
    options : mapping, default=None
        The model's options.
    k2prime : float, default=None
        The subject's shared k2' (1/min), for options with ``k2prime: shared``.
    half_life : float, default=None
        Radionuclide half-life, minutes (``counts`` weights).
    null_tacs : TacTable, default=None
        The same scan's release-free TACs (Bq/mL); adds the ``bp_nd_null`` column.
    """
    return fit_regions(tacs, reference=reference, model=model, conditions=conditions,
                       options=options, k2prime=k2prime, half_life=half_life,
                       null_tacs=null_tacs).table


def _table(fits: Mapping[str, ModelFit], targets: list[str]) -> pd.DataFrame:
    parts = []
    for name, result in fits.items():
        window = result.options.get("window") or [None, None]
        table = result.to_frame(targets)
        table.insert(0, "condition", name)
        table.insert(1, "window_start", np.nan if window[0] is None else float(window[0]))
        table.insert(2, "window_end", np.nan if window[1] is None else float(window[1]))
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _curves(tacs: TacTable, ref: np.ndarray, values: np.ndarray,
            fits: Mapping[str, ModelFit], targets: list[str]) -> pd.DataFrame:
    frames = tacs.frames
    n = frames.n_frames
    parts = []
    for name, result in fits.items():
        parts.append(pd.DataFrame({
            "condition": name,
            "region": np.repeat(targets, n),
            "frame_start": np.tile(frames.start_seconds, len(targets)),
            "frame_end": np.tile(frames.end_seconds, len(targets)),
            "measured": values.T.reshape(-1),
            "fitted": np.asarray(result.fitted, float).T.reshape(-1),
            "reference": np.tile(ref, len(targets)),
            "used": np.tile(np.asarray(result.used, bool), len(targets)),
        }))
    return pd.concat(parts, ignore_index=True)


def curves_path(out_tsv: str | os.PathLike) -> Path:
    """Where :func:`write_region_fits` puts the curves: ``x_bp.tsv`` -> ``x_fits.tsv``.

    Parameters
    ----------
    out_tsv : str or path-like
        A fit table ``..._bp.tsv``.
    """
    out = Path(out_tsv)
    stem = out.name[:-4] if out.name.endswith(".tsv") else out.name
    stem = stem[:-3] if stem.endswith("_bp") else stem
    return out.with_name(f"{stem}_fits.tsv")


def write_region_fits(tacs_path: str | os.PathLike, out_path: str | os.PathLike, *,
                      reference: str, model: str, conditions: Conditions | None = None,
                      options: Mapping[str, Any] | None = None, entities: Mapping | None = None,
                      k2prime_path: str | os.PathLike | None = None,
                      k2prime_regions: Sequence[str] | None = None, half_life: float | None = None,
                      release_fit_start: float | None = None, release_model: str = "srtm",
                      baseline_start: float | None = None,
                      release_free: tuple[Any, Any] | None = None) -> pd.DataFrame:
    """Read a scan's TACs, fit every condition window, write the table, sidecar and curves.

    Parameters
    ----------
    tacs_path : path
        TAC table: ``frame_start``, ``frame_end`` (seconds), one column per region (Bq/mL,
        decay-corrected); its JSON sidecar may give ``regions`` with ``n_voxels`` and the
        ``TracerRadionuclide``.
    out_path : path
        Fit table to write (``..._model-<model>_bp.tsv``); its sidecar and the curves
        (:func:`curves_path`) go beside it.
    reference : str
        Reference region column.
    model : str
        One of :data:`pipeline.kinetics.MODELS`.
    conditions : sequence of (name, window), default=None
        Condition windows, minutes; None fits the whole scan (condition ``all``).
    options : mapping, default=None
        Model options (``weights``, ``t_star``, ``k2prime``...), as under
        ``models.<model>`` in the config.
    entities : mapping, default=None
        ``participant_id``, ``session``, ``task``, ``run``: leading columns of each row
        (workflow).
    k2prime_path : path, default=None
        The subject's shared k2' (:func:`pipeline.kinetics.k2prime.write_subject_k2prime`),
        for ``k2prime: shared``.
    k2prime_regions : sequence of str, default=None
        Regions that estimate k2' when a model needs one and none is given.
    half_life : float, default=None
        Minutes, for ``counts`` weights; by default from the TAC sidecar
        (``TracerRadionuclide`` or ``half_life``).
    release_fit_start : float, default=None
        Minutes. With condition windows that follow one another in the scan, the release
        model (segmented SRTM from this time) takes the release out of the TACs, every
        window is also fitted on the result (``bp_nd_null``: the model's drift) and the
        release model's % fall of BP_ND is listed (``release_pct``, ``release_flags``).
        None: no release model (``bp_nd_null`` is n/a).
    release_model, baseline_start : str, float
        As :func:`~pipeline.kinetics.release.remove_release` (baseline start in minutes).
    release_free : (TacTable or None, DataFrame or None), default=None
        The scan's release fit (:func:`~pipeline.kinetics.release.scan_release_free`) when
        already made for another model of the scan; None fits it here.

    Returns
    -------
    DataFrame
        The fit table as written.
    """
    tacs_path, out_path = Path(tacs_path), Path(out_path)
    if half_life is None:
        half_life = _sidecar_half_life(tacs_path)
    tacs = read_tacs(tacs_path)
    windows = _conditions(conditions)
    boundaries = segment_boundaries(windows)
    null_tacs, release = release_free or scan_release_free(
        tacs, reference=reference, boundaries=boundaries, fit_start=release_fit_start,
        release_model=release_model, baseline_start=baseline_start)
    fits = fit_regions(tacs, reference=reference, model=model, conditions=conditions,
                       options=options, k2prime=read_shared_k2prime(k2prime_path),
                       k2prime_regions=k2prime_regions, half_life=half_life,
                       null_tacs=null_tacs)
    table = release_columns(fits.table, windows, boundaries, release)
    table.insert(table.columns.get_loc("k2prime") + 1, "n_voxels",
                 table["region"].map(_n_voxels(tacs_path)).astype(float))
    if entities is not None:
        for key in ("run", "task", "session", "participant_id"):
            table.insert(0, key, entities.get(key))
    first = next(iter(fits.fits.values()))
    recorded = {k: v for k, v in first.options.items() if k not in ("window", "frame_weights")}
    k2p_values = set(fits.k2prime.values())
    sources = [str(tacs_path)] + ([str(k2prime_path)] if k2prime_path else [])
    write_table(out_path, table, provenance(
        Description=f"Regional BP_ND of one scan per condition window, model {model}",
        model=model, options=recorded, reference_region=reference,
        conditions={name: r.options.get("window") for name, r in fits.fits.items()},
        k2prime=k2p_values.pop() if len(k2p_values) == 1 else fits.k2prime,
        k2prime_source=fits.k2prime_source,
        methods=describe_fit(model, {**first.options, "reference": reference,
                                     "k2prime_source": fits.k2prime_source}),
        release_model=None if release is None else release.attrs.get("record"),
        columns={**_ROW_COLUMNS, **COLUMN_DESCRIPTIONS}, inputs=sources))
    write_table(curves_path(out_path), fits.curves, provenance(
        Description=f"Measured and fitted TACs of model {model} per condition window; "
        "times in seconds, activity in Bq/mL; fitted is n/a outside the fitted frames",
        model=model, reference_region=reference, inputs=sources))
    return table


_ROW_COLUMNS = {
    "participant_id": "participant (sub-<label>)",
    "session": "session label; n/a without sessions",
    "task": "task label",
    "run": "run label; n/a without runs",
    "condition": "condition name (all = whole scan)",
    "window_start": "fit window start (min); n/a = scan start",
    "window_end": "fit window end (min); n/a = scan end",
    "n_voxels": "voxels in the region (from the TAC table's sidecar)",
    "bp_nd_null": "BP_ND of the same window on the TACs with the release model's release "
                  "taken out: the model's value without release (n/a: no release model)",
    "release_pct": "the release model's % fall of BP_ND from the first window (positive = "
                   "BP_ND fell; 0 in the first window; n/a: no release model)",
    "release_flags": "flags of the release model's fit of the region (empty = clean)",
}


def _n_voxels(tac_path: Path) -> dict[str, float]:
    """Voxel count per region from a TAC sidecar, if it records them."""
    side = sidecar_path(tac_path)
    if not side.is_file():
        return {}
    info = read_json(side)
    regions = info.get("regions") or info.get("Regions") or {}
    entries = regions.items() if isinstance(regions, Mapping) else (
        (e.get("name"), e) for e in regions if isinstance(e, Mapping))
    counts: dict[str, float] = {}
    for name, entry in entries:
        if isinstance(entry, Mapping) and name is not None:
            value = entry.get("n_voxels", entry.get("voxels"))
            if value is not None:
                counts[str(name)] = float(value)
    return counts


def _sidecar_half_life(tacs_path: Path) -> float | None:
    """Half-life (minutes) from a TAC table's sidecar (``half_life`` or the radionuclide)."""
    from pipeline.frames import half_life_minutes

    path = sidecar_path(tacs_path)
    if not path.is_file():
        return None
    meta = read_json(path)
    if meta.get("half_life") is not None:
        return float(meta["half_life"])
    nuclide = meta.get("TracerRadionuclide")
    if not isinstance(nuclide, str):
        return None
    try:
        return half_life_minutes(nuclide)
    except (InputError, KeyError, ValueError):
        return None
