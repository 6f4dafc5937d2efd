"""The workflow's ``fit_regions`` step: every configured model on one scan's TACs.

One job per scan (not per scan and model) halves the jobs a large study's DAG holds, and
the release model (segmented SRTM, :mod:`pipeline.kinetics.release`), which does not depend
on the model, is fitted once per scan and shared by every model's table. Each model's files
are exactly those :func:`~pipeline.kinetics.regionfit.write_region_fits` writes alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError, format_problem
from pipeline.kinetics.regionfit import Conditions, write_region_fits
from pipeline.kinetics.release import scan_release_free, segment_boundaries
from pipeline.tables import read_tacs

__all__ = ["write_scan_fits"]


def write_scan_fits(tacs_path: str | os.PathLike, outputs: Mapping[str, str | os.PathLike], *,
                    reference: str, options: Mapping[str, Mapping[str, Any] | None],
                    conditions: Conditions | None = None,
                    entities: Mapping[str, Any] | None = None,
                    k2prime_path: str | os.PathLike | None = None,
                    half_life: float | None = None,
                    release_fit_start: float | None = None, release_model: str = "srtm",
                    baseline_start: float | None = None) -> dict[str, pd.DataFrame]:
    """Fit every model of ``outputs`` on one scan; write each model's table, sidecar, curves.

    Parameters
    ----------
    tacs_path : path
        TAC table of the scan (seconds, Bq/mL; :func:`pipeline.tables.read_tacs`).
    outputs : mapping
        Model name -> its fit table (``..._model-<label>_bp.tsv``), in the order fitted.
    reference : str
        Reference region column.
    options : mapping
        Model name -> its options (``models.<model>`` in the config; None = defaults).
        Every model of ``outputs`` must be listed.
    conditions, entities, half_life, release_fit_start, release_model, baseline_start
        As :func:`~pipeline.kinetics.regionfit.write_region_fits` (windows in minutes,
        half-life, release start and baseline start in minutes).
    k2prime_path : path, default=None
        The subject's shared k2' JSON, given to the models whose options say
        ``k2prime: shared``.

    Returns
    -------
    dict
        Model name -> its fit table as written.

    Raises
    ------
    ConfigError
        If a model of ``outputs`` has no entry in ``options``.
    """
    missing = [m for m in outputs if m not in options]
    if missing:
        raise ConfigError(format_problem(
            "fit_regions", f"no options given for model(s) {', '.join(missing)}",
            "Pass every model's options (models.<model> in the config)."))
    release = (None, None)
    if release_fit_start is not None:
        boundaries = segment_boundaries([(name, window) for name, window in conditions or ()])
        release = scan_release_free(read_tacs(Path(tacs_path)), reference=reference,
                                    boundaries=boundaries, fit_start=release_fit_start,
                                    release_model=release_model,
                                    baseline_start=baseline_start)
    return {model: write_region_fits(tacs_path, out_path, reference=reference, model=model,
                                     conditions=conditions, options=options[model] or {},
                                     entities=entities,
                                     k2prime_path=k2prime_path if _uses_shared(
                                         options[model]) else None,
                                     half_life=half_life, release_fit_start=release_fit_start,
                                     release_model=release_model,
                                     baseline_start=baseline_start, release_free=release)
            for model, out_path in outputs.items()}


def _uses_shared(options: Mapping[str, Any] | None) -> bool:
    """Whether a model's options ask for the subject's shared k2' (``k2prime: shared``)."""
    return (options or {}).get("k2prime") == "shared"
