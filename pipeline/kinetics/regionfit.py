"""Fit one model to every region of a TAC table and write the fit table (the ``fit_regions`` step).

Reads a TAC table (``frame_start``, ``frame_end`` in seconds, one column per region in
Bq/mL), fits every region except the reference, and writes three files:

- ``OUT.tsv``: one row per region: ``region, model, bp_nd, r1, k2, k2prime, se_bp_nd,
  se_r1, se_k2``, model extras (``k2a``...), fit quality (``n_frames, rmse, nrmse``),
  ``flags``, and the window (``window_start, window_end``, minutes);
- ``OUT.json``: how it was made (model, options, reference, input, methods sentence);
- ``<stem>_fits.tsv`` (``_bp`` in the stem becomes ``_fits``): the measured and fitted
  curves, long format (``region, frame_start, frame_end, measured, fitted, used``), for
  the report's fit plots.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem
from pipeline.frames import half_life_minutes
from pipeline.kinetics import MODELS, ModelFit, fit
from pipeline.tables import TacTable, provenance, read_json, read_tacs, sidecar_path, write_table

__all__ = ["curves_path", "describe_fit", "fit_regions", "write_region_fits"]


def fit_regions(tacs: TacTable, *, reference: str, model: str,
                window: tuple[float | None, float | None] | None = None,
                weights: str | np.ndarray = "uniform", half_life: float | None = None,
                **options: Any) -> tuple[ModelFit, list[str]]:
    """Fit ``model`` to every region of ``tacs`` except ``reference``.

    For ``srtm2`` without ``k2prime``, k2' is the median SRTM k2' over ``k2prime_regions``
    (default: every target region) and its source is recorded in the options.

    Returns
    -------
    result : ModelFit
    regions : list of str
        The fitted regions, in table order.
    """
    ref = tacs.column(reference)
    regions = [r for r in tacs.regions if r != reference]
    if not regions:
        raise InputError(format_problem(
            tacs.frames.source or None, f"the TAC table has no region besides the reference "
            f"{reference!r}", "Add target regions to the TAC table."))
    data = tacs.tacs[regions].to_numpy(dtype=float)
    k2prime_regions = options.pop("k2prime_regions", None)
    source = None
    if model in ("srtm2", "mrtm2") and options.get("k2prime") is None:
        chosen = list(k2prime_regions or regions)
        missing = [r for r in chosen if r not in regions]
        if missing:
            raise InputError(format_problem(
                tacs.frames.source or None, f"k2prime_regions {missing} are not target regions",
                f"Choose among: {', '.join(regions)}."))
        cols = data[:, [regions.index(r) for r in chosen]]
        names = (f"all {len(chosen)} target regions" if k2prime_regions is None
                 else ", ".join(chosen))
        weight_array = _weights(weights, tacs, ref, half_life)
        if model == "srtm2":
            from pipeline.kinetics.srtm2 import k2prime_from_srtm
            options["k2prime"] = k2prime_from_srtm(tacs.frames, ref, cols, weights=weight_array,
                                                   window=window)
            source = f"median SRTM k2/R1 over {names}"
        else:
            from pipeline.kinetics.mrtm import k2prime_from_mrtm
            options["k2prime"] = k2prime_from_mrtm(
                tacs.frames, ref, cols, weights=weight_array, window=window,
                t_star=options.get("t_star") or 0.0)
            source = f"median MRTM k2' over {names}"
    if window is not None:
        options["window"] = tuple(window)
    result = fit(model, tacs.frames, ref, data, weights=weights, half_life=half_life, **options)
    result.options["reference"] = reference
    if source is not None:
        result.options["k2prime_source"] = source
    return result, regions


def write_region_fits(tacs_tsv: str | os.PathLike, out_tsv: str | os.PathLike, *,
                      reference: str, model: str,
                      window: tuple[float | None, float | None] | None = None,
                      weights: str = "uniform", half_life: float | None = None,
                      **options: Any) -> pd.DataFrame:
    """Read a TAC table, fit ``model`` to every non-reference region, write the results.

    Parameters
    ----------
    tacs_tsv : path
        TAC table: ``frame_start``, ``frame_end`` (seconds), one column per region (Bq/mL,
        decay-corrected).
    out_tsv : path
        Fit table to write; its sidecar and the ``_fits.tsv`` curves go beside it.
    reference : str
        Reference region column.
    model : str
        One of :data:`pipeline.kinetics.MODELS`.
    window : (start, end), default=None
        Minutes; None fits the whole scan.
    weights : {"uniform", "duration", "counts"}, default="uniform"
    half_life : float, default=None
        Minutes, for ``counts`` weights; by default from the TAC sidecar's
        ``TracerRadionuclide`` (or ``half_life``, minutes).
    **options
        Model options (``t_star``, ``k2prime``, ``k2prime_regions``, ``bounds``...).

    Returns
    -------
    DataFrame
        The fit table as written.
    """
    tacs = read_tacs(tacs_tsv)
    if weights == "counts" and half_life is None:
        half_life = _sidecar_half_life(tacs_tsv)
    result, regions = fit_regions(tacs, reference=reference, model=model, window=window,
                                  weights=weights, half_life=half_life, **options)
    table = result.to_frame(regions)
    win = result.options.get("window") or (None, None)
    table["window_start"] = np.nan if win[0] is None else float(win[0])
    table["window_end"] = np.nan if win[1] is None else float(win[1])
    options_out = {k: v for k, v in result.options.items() if k != "frame_weights"}
    sidecar = provenance(
        Description=f"Regional fits of model {model} to {Path(tacs_tsv).name}",
        Model=model, Reference=reference, Options=options_out,
        FrameWeights=result.options.get("frame_weights"),
        Sources=[str(tacs_tsv)], Methods=describe_fit(result),
        Columns=_COLUMNS)
    write_table(out_tsv, table, sidecar)
    curves = _curves_table(tacs, result, regions)
    write_table(curves_path(out_tsv), curves, provenance(
        Description=f"Measured and fitted TACs of model {model}; times in seconds, "
        "activity in Bq/mL; fitted is n/a for frames outside the fit",
        Model=model, Reference=reference, Sources=[str(tacs_tsv)]))
    return table


def curves_path(out_tsv: str | os.PathLike) -> Path:
    """Where :func:`write_region_fits` puts the fitted curves: ``x_bp.tsv`` -> ``x_fits.tsv``."""
    out = Path(out_tsv)
    stem = out.name[:-4] if out.name.endswith(".tsv") else out.name
    stem = stem[:-3] if stem.endswith("_bp") else stem
    return out.with_name(f"{stem}_fits.tsv")


def describe_fit(result: ModelFit) -> str:
    """The methods sentence of the model family that made ``result``."""
    module = importlib.import_module(MODELS[result.model].split(":")[0])
    describe = getattr(module, "describe", None)
    if describe is None:
        return f"BP_ND was estimated with {result.model}."
    return describe({"model": result.model, **result.options})


_COLUMNS = {
    "region": "target region (TAC table column)",
    "model": "kinetic model",
    "bp_nd": "non-displaceable binding potential (unitless)",
    "r1": "relative delivery K1/K1' (unitless); n/a where the model has none",
    "k2": "target efflux rate constant (1/min)",
    "k2prime": "reference efflux rate constant used or estimated (1/min)",
    "se_bp_nd": "standard error of bp_nd from the fit (unitless)",
    "k2a": "apparent efflux k2/(1+BP_ND) (1/min)",
    "n_frames": "frames inside the fit window",
    "rmse": "root mean square residual over fitted frames (Bq/mL)",
    "nrmse": "rmse divided by the mean target activity over fitted frames",
    "flags": "';'-joined problems: at_bound, not_converged, grid_edge, nan_input, ...",
    "window_start": "fit window start (min); n/a = scan start",
    "window_end": "fit window end (min); n/a = scan end",
}


def _curves_table(tacs: TacTable, result: ModelFit, regions: list[str]) -> pd.DataFrame:
    frames = tacs.frames
    n = frames.n_frames
    data = tacs.tacs[regions].to_numpy(dtype=float)
    return pd.DataFrame({
        "region": np.repeat(regions, n),
        "frame_start": np.tile(frames.start_seconds, len(regions)),
        "frame_end": np.tile(frames.end_seconds, len(regions)),
        "measured": data.T.reshape(-1),
        "fitted": np.asarray(result.fitted, float).T.reshape(-1),
        "reference": np.tile(tacs.column(result.options["reference"]), len(regions)),
        "used": np.tile(np.asarray(result.used, bool), len(regions)),
    })


def _weights(weights, tacs: TacTable, ref: np.ndarray, half_life):
    if isinstance(weights, str):
        from pipeline.kinetics.weights import frame_weights
        return frame_weights(weights, tacs.frames, ref, half_life=half_life)
    return weights


def _sidecar_half_life(tacs_tsv) -> float | None:
    path = sidecar_path(tacs_tsv)
    if not path.is_file():
        return None
    meta = read_json(path)
    if meta.get("half_life") is not None:
        return float(meta["half_life"])
    nuclide = meta.get("TracerRadionuclide")
    return half_life_minutes(nuclide) if nuclide else None
