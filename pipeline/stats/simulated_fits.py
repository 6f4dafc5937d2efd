"""Analyse a region-level simulated study the way the workflow analyses region TACs.

:func:`region_bp_nd` turns a :class:`pipeline.simulate.roi.RegionStudy` into the long
``group/bp_nd.tsv`` table (participant, task, condition window, region, model, BP_ND) with
the workflow's own steps: the subject's shared k2' (:func:`estimate_k2prime`) and the
condition-window fits (:func:`fit_conditions`). Calibration and power studies use it to run
many simulated studies in seconds each, without images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.design import (
    k2prime_settings,
    load_design,
    model_options,
    needs_k2prime,
    region_models,
)
from pipeline.errors import InputError
from pipeline.kinetics import estimate_k2prime, fit_conditions
from pipeline.stats.groups import group_differences
from pipeline.stats.regional import contrast_values

__all__ = ["region_bp_nd", "region_group_differences"]


def region_bp_nd(study: Any, config: Mapping[str, Any], *,
                 models: list[str] | None = None) -> pd.DataFrame:
    """BP_ND of every participant, scan, condition window, region and model.

    Parameters
    ----------
    study : RegionStudy
        From :func:`pipeline.simulate.simulate_region_tacs` (``scans`` with ``task``).
    config : mapping
        Validated config: ``design``, ``models``, ``primary_model``, ``k2prime``.
    models : list of str, default=None
        Models to fit; default every region model of the config.

    Returns
    -------
    DataFrame
        ``participant_id``, ``task``, ``condition``, ``region``, ``model``, ``bp_nd``; a
        subject without a usable k2' has no rows for models that need it.
    """
    design = load_design(config)
    models = models or region_models(config)
    options = {m: model_options(config, m) for m in models}
    k2_cfg = k2prime_settings(config) if any(needs_k2prime(o) for o in options.values()) \
        else None
    scans = study.scans.reset_index(drop=True)
    tables = []
    for pid, rows in scans.groupby("participant_id", sort=False):
        k2p = None
        if k2_cfg is not None:
            try:
                k2p = estimate_k2prime([study.tac_table(i) for i in rows.index], k2_cfg,
                                       reference=study.reference)[0]
            except InputError:
                k2p = np.nan
        for i in rows.index:
            task = scans.at[i, "task"]
            windows = [(c.name, c.window) for c in design.conditions.values()
                       if c.matches(task, None)]
            if not windows:
                continue
            tacs = study.tac_table(i)
            for model in models:
                if needs_k2prime(options[model]) and not np.isfinite(k2p):
                    continue
                fits = fit_conditions(tacs, reference=study.reference, model=model,
                                      conditions=windows, options=options[model],
                                      k2prime=k2p, half_life=20.364)
                tables.append(fits[["condition", "region", "model", "bp_nd"]]
                              .assign(participant_id=pid, task=task))
    columns = ["participant_id", "task", "condition", "region", "model", "bp_nd"]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True)[columns]


def region_group_differences(study: Any, config: Mapping[str, Any], *,
                             models: list[str] | None = None, n_perm: int = 0,
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant contrast values and the group differences of a simulated two-group
    study (``study.participants`` has the ``group`` column; ``design.groups`` in config).

    Parameters
    ----------
    study : RegionStudy
        A region-level simulated two-group study (:class:`pipeline.simulate.roi.RegionStudy`).
    config : mapping
        A config with ``design.groups``.
    models : list of str, default=None
        Models fitted; None uses the config's.
    n_perm : int, default=0
        Label permutations of the permutation p (0: none).

    Returns
    -------
    values : DataFrame
        :func:`pipeline.stats.regional.contrast_values` (no null-drift correction).
    differences : DataFrame
        :func:`pipeline.stats.groups.group_differences`.
    """
    design = load_design(config)
    values, _ = contrast_values(region_bp_nd(study, config, models=models), design)
    labels = study.participants.set_index("participant_id")["group"].astype(str)
    labels = labels[labels.isin(design.groups.levels)]
    return values, group_differences(values, labels, design.groups, n_perm=n_perm,
                                     participants=study.participants)
