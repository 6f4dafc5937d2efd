"""The workflow's region-level analysis of a whole study in one call, without files.

The same library steps the Snakemake rules run (the subject's shared k2', condition-window
fits with the release model's drift, paired contrasts, the drift guard), applied to TAC
tables in memory. Used by the validation tests and benchmarks (simulated studies and the
independent simulator's TACs) and handy in a notebook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.design import Design, K2primeSettings, needs_k2prime
from pipeline.kinetics import estimate_k2prime, fit_conditions
from pipeline.kinetics.release import release_free_tacs, segment_boundaries
from pipeline.stats.regional import contrast_values, summarize_contrasts
from pipeline.tables import TacTable

__all__ = ["ScanTacs", "analyse_region_study"]


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


def analyse_region_study(scans: Iterable[ScanTacs], design: Design, *,
                         models: Mapping[str, Mapping[str, Any] | None], reference: str,
                         k2prime: K2primeSettings | None = None,
                         release_fit_start: float | None = 10.0, sys_sd: float = 1.0,
                         test: str = "ttest", alpha: float = 0.05, half_life: float = 20.364,
                         guard: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    sys_sd : float, default=1.0
        Systematic SD of the release model's drift, % points.
    test, alpha, guard
        As for :func:`pipeline.stats.regional.summarize_contrasts`.
    half_life : float, default=20.364
        Minutes (counts weights).

    Returns
    -------
    bp : DataFrame
        The ``group/bp_nd.tsv`` rows.
    contrasts : DataFrame
        The ``group/contrasts.tsv`` rows.
    """
    scans = list(scans)
    by_subject: dict[str, list[ScanTacs]] = {}
    for scan in scans:
        by_subject.setdefault(scan.participant_id, []).append(scan)
    shared = any(needs_k2prime(dict(options or {})) for options in models.values())
    rows = []
    for pid, subject in by_subject.items():
        k2p = None
        if shared:
            k2p = estimate_k2prime([s.tacs for s in subject], k2prime, reference=reference)[0]
        for scan in subject:
            conditions = _conditions(design, scan)
            if not conditions:
                continue
            boundaries = segment_boundaries(conditions)
            null = None
            if release_fit_start is not None and boundaries:
                null, _ = release_free_tacs(scan.tacs, reference=reference,
                                            boundaries=boundaries,
                                            fit_start=float(release_fit_start))
            for model, options in models.items():
                table = fit_conditions(scan.tacs, reference=reference, model=model,
                                       conditions=conditions, options=dict(options or {}),
                                       k2prime=k2p, half_life=half_life, null_tacs=null)
                table.insert(0, "task", scan.task)
                table.insert(0, "session", scan.session)
                table.insert(0, "participant_id", pid)
                rows.append(table)
    bp = pd.concat(rows, ignore_index=True)
    values, _ = contrast_values(bp, design, drift_correct=release_fit_start is not None)
    contrasts = summarize_contrasts(values, test=test, sys_sd=sys_sd, alpha=alpha,
                                    design=design, guard=guard)
    return bp, contrasts


def scans_from_tables(tables: Sequence[tuple[str, str, TacTable]]) -> list[ScanTacs]:
    """``(participant_id, task, TacTable)`` triples as :class:`ScanTacs`."""
    return [ScanTacs(pid, task, tacs) for pid, task, tacs in tables]
