"""The workflow's region-level analysis of a whole study in one call, without files.

The same library steps the Snakemake rules run (the subject's shared k2', condition-window
fits with the release model's drift, paired contrasts, the drift guard), applied to TAC
tables in memory. Used by the validation tests and benchmarks (simulated studies and the
independent simulator's TACs) and handy in a notebook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.design import Design, K2primeSettings, needs_k2prime
from pipeline.errors import InputError
from pipeline.kinetics import estimate_k2prime, fit_conditions
from pipeline.kinetics.release import release_free_tacs, segment_boundaries
from pipeline.stats.contrast_tests import SYSTEMATIC_SD, summarize_contrasts
from pipeline.stats.regional import contrast_values
from pipeline.tables import TacTable

__all__ = ["ScanTacs", "analyse_region_study", "region_bp_table", "region_group_differences",
           "scans_of_study"]


@dataclass(frozen=True)
class ScanTacs:
    """One scan's TACs with the labels the design matches on."""

    participant_id: str
    task: str
    tacs: TacTable
    session: str | None = None


def _conditions(design: Design, scan: ScanTacs) -> list[tuple[str, Any]]:
    return [(c.name, c.window) for c in design.conditions.values()
            if c.matches(scan.task, scan.session)]


def region_bp_table(scans: Iterable[ScanTacs], design: Design, *,
                    models: Mapping[str, Mapping[str, Any] | None], reference: str,
                    k2prime: K2primeSettings | None = None,
                    release_fit_start: float | None = 10.0,
                    half_life: float = 20.364, release_model: str = "srtm",
                    baseline_start: float | None = None) -> pd.DataFrame:
    """The ``group/bp_nd.tsv`` rows of a study: every scan's condition-window fits.

    Each subject's shared k2' comes from all its scans (a subject without a usable one has
    no rows for models that need it); with ``release_fit_start`` (minutes) each within-scan
    scan is also fitted with the release taken out (``bp_nd_null``).

    Parameters
    ----------
    scans : iterable of ScanTacs
        Every scan; TACs in minutes and Bq/mL with the reference among the regions.
    design : Design
        Conditions and contrasts.
    models : mapping
        Model name -> options (as under ``models`` in the config).
    reference : str
        Reference region.
    k2prime : K2primeSettings, default=None
        How the subject's shared k2' is estimated.
    release_fit_start : float or None, default=10.0
        Minutes; the release model's first fitted frame (None: no ``bp_nd_null``).
    half_life : float, default=20.364
        Minutes (counts weights).
    release_model : str, default="srtm"
        How the release model gets R1 and k2
        (:data:`pipeline.kinetics.release.RELEASE_MODELS`); ``srtm2`` uses the subject's
        shared k2' (estimated here even if no model needs it).
    baseline_start : float, default=None
        Minutes; start of the baseline BP_ND of the ``early_step`` release model.

    Returns
    -------
    DataFrame
        The ``group/bp_nd.tsv`` rows.
    """
    by_subject: dict[str, list[ScanTacs]] = {}
    for scan in scans:
        by_subject.setdefault(scan.participant_id, []).append(scan)
    shared = any(needs_k2prime(dict(options or {})) for options in models.values()) \
        or (release_model == "srtm2" and release_fit_start is not None)
    rows = []
    for pid, subject in by_subject.items():
        k2p = None
        if shared:
            try:
                k2p = estimate_k2prime([s.tacs for s in subject], k2prime,
                                       reference=reference)[0]
            except InputError:
                k2p = np.nan
        for scan in subject:
            conditions = _conditions(design, scan)
            if not conditions:
                continue
            boundaries = segment_boundaries(conditions)
            null = None
            if release_fit_start is not None and boundaries and (
                    release_model != "srtm2" or np.isfinite(k2p)):
                null, _ = release_free_tacs(scan.tacs, reference=reference,
                                            boundaries=boundaries,
                                            fit_start=float(release_fit_start),
                                            release_model=release_model, k2prime=k2p,
                                            baseline_start=baseline_start)
            for model, options in models.items():
                options = dict(options or {})
                if needs_k2prime(options) and not np.isfinite(k2p):
                    continue
                table = fit_conditions(scan.tacs, reference=reference, model=model,
                                       conditions=conditions, options=options, k2prime=k2p,
                                       half_life=half_life, null_tacs=null)
                table.insert(0, "task", scan.task)
                table.insert(0, "session", scan.session)
                table.insert(0, "participant_id", pid)
                rows.append(table)
    if not rows:
        return pd.DataFrame(columns=["participant_id", "session", "task", "condition",
                                     "region", "model", "bp_nd", "bp_nd_null"])
    return pd.concat(rows, ignore_index=True)


def analyse_region_study(scans: Iterable[ScanTacs], design: Design, *,
                         models: Mapping[str, Mapping[str, Any] | None], reference: str,
                         k2prime: K2primeSettings | None = None,
                         release_fit_start: float | None = 10.0, sys_sd: float = SYSTEMATIC_SD,
                         test: str = "ttest", alpha: float = 0.05, half_life: float = 20.364,
                         guard: bool = True, drift_pool: str = "scans",
                         release_model: str = "srtm", baseline_start: float | None = None,
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Region-wise BP_ND and contrasts of a study, as the workflow computes them.

    Parameters
    ----------
    scans : iterable of ScanTacs
        Every scan; TACs in minutes and Bq/mL with the reference among the regions.
    design : Design
        Conditions and contrasts.
    models : mapping
        Model name -> options (as under ``models`` in the config).
    reference : str
        Reference region.
    k2prime : K2primeSettings, default=None
        How the subject's shared k2' is estimated (needed by ``k2prime: shared`` options).
    release_fit_start : float or None, default=10.0
        Minutes; the release model's first fitted frame (None: no drift estimate).
    sys_sd : float, default=SYSTEMATIC_SD
        Systematic SD of the release model's drift, % points.
    test, alpha, guard
        As for :func:`pipeline.stats.contrast_tests.summarize_contrasts`.
    half_life : float, default=20.364
        Minutes (counts weights).
    drift_pool : {"scans", "none"}, default="scans"
        As for :func:`pipeline.stats.regional.contrast_values`.
    release_model, baseline_start
        As for :func:`region_bp_table`.

    Returns
    -------
    bp : DataFrame
        The ``group/bp_nd.tsv`` rows.
    contrasts : DataFrame
        The ``group/contrasts.tsv`` rows.
    """
    bp = region_bp_table(scans, design, models=models, reference=reference, k2prime=k2prime,
                         release_fit_start=release_fit_start, half_life=half_life,
                         release_model=release_model, baseline_start=baseline_start)
    values, _ = contrast_values(bp, design, drift_correct=release_fit_start is not None,
                                drift_pool=drift_pool)
    contrasts = summarize_contrasts(values, test=test, sys_sd=sys_sd, alpha=alpha,
                                    design=design, guard=guard)
    return bp, contrasts


def scans_of_study(study: Any) -> list[ScanTacs]:
    """The scans of a :class:`pipeline.simulate.roi.RegionStudy` as :class:`ScanTacs`.

    Parameters
    ----------
    study : RegionStudy
        A simulated region-level study (TACs in minutes and Bq/mL).

    Returns
    -------
    list of ScanTacs
        One per scan, in the study's order.
    """
    return [ScanTacs(str(row.participant_id), str(row.task), study.tac_table(i))
            for i, row in study.scans.reset_index(drop=True).iterrows()]


def region_group_differences(study: Any, config: Mapping[str, Any], *,
                             models: list[str] | None = None, n_perm: int = 0,
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant contrast values and the group differences of a simulated two-group
    study (``study.participants`` has the ``group`` column; ``design.groups`` in config).

    Between groups the raw % changes are compared (with one protocol the within-scan drift
    cancels), so no release model runs.

    Parameters
    ----------
    study : RegionStudy
        Simulated two-group study; ``study.participants`` has the group column.
    config : mapping
        A petbp config with ``design.groups`` (models, reference, k2prime, statistics).
    models : list of str, default=None
        Models to fit (default: the config's region models).
    n_perm : int, default=0
        Permutations of the group labels for permutation p values (0: none).

    Returns
    -------
    values : DataFrame
        :func:`pipeline.stats.regional.contrast_values` (no drift correction).
    differences : DataFrame
        :func:`pipeline.stats.groups.group_differences`.
    """
    from pipeline.design import k2prime_settings, load_design, model_options, region_models
    from pipeline.stats.groups import group_differences

    design = load_design(config)
    names = models or region_models(config)
    options = {m: model_options(config, m) for m in names}
    k2p = k2prime_settings(config) if any(needs_k2prime(o) for o in options.values()) \
        else None
    bp = region_bp_table(scans_of_study(study), design, models=options,
                         reference=study.reference, k2prime=k2p, release_fit_start=None)
    values, _ = contrast_values(bp, design, drift_correct=False)
    labels = study.participants.set_index("participant_id")["group"].astype(str)
    labels = labels[labels.isin(design.groups.levels)]
    return values, group_differences(values, labels, design.groups, n_perm=n_perm,
                                     participants=study.participants)
