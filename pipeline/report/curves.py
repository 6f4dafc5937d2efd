"""Measured and fitted curves of one scan, for the QC plots.

The region fit step may write them (``<stem>_model-<model>_fits.tsv``). When it did not,
they are recomputed here from the scan's TAC table and the fit's JSON sidecar (model,
options, condition windows, k2' and reference region as recorded when the fit ran), with
the same :func:`pipeline.kinetics.fit` call, so the curves are those of the reported
BP_ND values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem
from pipeline.tables import read_json, read_table, read_tacs, sidecar_path

__all__ = ["read_curves", "recompute_curves"]

log = logging.getLogger(__name__)


def _half_life(tacs_path: Path) -> float | None:
    side = sidecar_path(tacs_path)
    if not side.is_file():
        return None
    meta = read_json(side)
    if meta.get("half_life") is not None:
        return float(meta["half_life"])
    nuclide = meta.get("TracerRadionuclide")
    if isinstance(nuclide, str):
        from pipeline.frames import half_life_minutes

        try:
            return half_life_minutes(nuclide)
        except (InputError, KeyError, ValueError):
            return None
    return None


def recompute_curves(tacs_path: str | Path, bp_path: str | Path) -> pd.DataFrame:
    """Fitted curves of every region and condition window from the fit's sidecar.

    Parameters
    ----------
    tacs_path : str or Path
        The scan's TAC table (seconds, Bq/mL).
    bp_path : str or Path
        The scan's ``_model-<model>_bp.tsv``; its JSON sidecar must record ``model``,
        ``options``, ``reference_region`` and ``conditions`` (name -> window in minutes).

    Returns
    -------
    DataFrame
        ``frame_start``, ``frame_end`` (s), ``region``, ``condition``, ``measured``,
        ``fitted`` (Bq/mL; NaN outside the window) and ``used``.

    Raises
    ------
    InputError
        If the sidecar lacks what is needed.
    """
    from pipeline import kinetics

    bp_path = Path(bp_path)
    meta = read_json(sidecar_path(bp_path))
    missing = [k for k in ("model", "reference_region", "conditions") if k not in meta]
    if missing:
        raise InputError(format_problem(
            sidecar_path(bp_path), f"no {', '.join(missing)} recorded",
            "Rerun the region fits with this version of petbp."))
    tacs = read_tacs(tacs_path)
    options: dict[str, Any] = dict(meta.get("options") or {})
    if options.get("k2prime") == "shared":
        options["k2prime"] = float(meta["k2prime"])
    weights = options.pop("weights", "uniform")
    reference = meta["reference_region"]
    ref = tacs.column(reference)
    targets = [r for r in tacs.regions if r != reference]
    values = tacs.tacs[targets].to_numpy(float)
    n = tacs.frames.n_frames
    parts = []
    conditions: Mapping[str, Any] = meta["conditions"]
    for name, window in conditions.items():
        result = kinetics.fit(meta["model"], tacs.frames, ref, values, weights=weights,
                              half_life=_half_life(Path(tacs_path)),
                              window=None if window is None else tuple(window), **options)
        fitted = np.asarray(result.fitted, float).reshape(n, -1)
        parts.append(pd.DataFrame({
            "frame_start": np.tile(tacs.frames.start_seconds, len(targets)),
            "frame_end": np.tile(tacs.frames.end_seconds, len(targets)),
            "region": np.repeat(targets, n), "condition": name,
            "measured": values.T.reshape(-1), "fitted": fitted.T.reshape(-1),
            "used": np.tile(np.asarray(result.used, bool), len(targets))}))
    return pd.concat(parts, ignore_index=True)


def read_curves(fits_path: str | Path | None, tacs_path: str | Path | None,
                bp_path: str | Path | None) -> tuple[pd.DataFrame, bool]:
    """The scan's curves: from ``_fits.tsv`` if written, else recomputed.

    Returns
    -------
    (DataFrame, bool)
        The long curve table and whether it was recomputed.
    """
    if fits_path is not None and Path(fits_path).is_file():
        return read_table(fits_path), False
    if tacs_path is None or bp_path is None:
        raise InputError(format_problem(
            bp_path or tacs_path, "no fitted curves and no TAC table + fit sidecar to "
            "recompute them", "Run the region fits (and TAC extraction) for this scan."))
    return recompute_curves(tacs_path, bp_path), True
