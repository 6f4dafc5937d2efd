"""The ``write_*`` steps of the group statistics: read tables, call the statistics, write.

``write_contrasts`` makes ``group/contrasts.tsv``, ``group/contrast_values.tsv`` (one row
per participant) and ``group/exclusions.tsv``; ``write_correlations`` makes
``group/correlations.tsv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.design import load_design
from pipeline.errors import InputError, format_problem
from pipeline.stats.correlations import correlate_scores
from pipeline.stats.groups import with_groups
from pipeline.stats.regional import contrast_values, summarize_contrasts
from pipeline.tables import provenance, write_table

__all__ = ["read_group_table", "write_contrasts", "write_correlations"]

_LABELS = {"participant_id": str, "session": str, "task": str, "run": str,
           "condition": str, "region": str, "model": str, "contrast": str}


def read_group_table(path: str | PathLike) -> pd.DataFrame:
    """Read a group TSV keeping labels as text (``run`` ``01`` stays ``01``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(format_problem(path, "file not found", "Run the step that makes it."))
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    dtypes = {k: v for k, v in _LABELS.items() if k in header}
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype=dtypes)


def write_contrasts(bp_path: str | PathLike, out_contrasts: str | PathLike,
                    out_values: str | PathLike, out_exclusions: str | PathLike, *,
                    design: Mapping[str, Any], test: str = "ttest", alpha: float = 0.05,
                    drift_correct: bool = True, drift_path: str | PathLike | None = None,
                    participants: pd.DataFrame | None = None) -> Path:
    """Paired contrasts of ``group/bp_nd.tsv`` per the config's design and statistics.

    Parameters
    ----------
    bp_path : path-like
        ``group/bp_nd.tsv``.
    out_contrasts, out_values, out_exclusions : path-like
        ``group/contrasts.tsv``, ``group/contrast_values.tsv``, ``group/exclusions.tsv``.
    design : mapping
        The config's ``design`` section (conditions and contrasts).
    test : {"ttest", "wilcoxon"}, default="ttest"
        ``statistics.test``: which test fills the p column.
    alpha : float, default=0.05
        ``statistics.alpha``: FDR level.
    drift_correct : bool, default=True
        ``statistics.null_drift.correct``: test changes against the simulated null drift.
    drift_path : path-like, default=None
        ``group/null_drift.tsv``; used when ``drift_correct`` is true.
    participants : DataFrame, default=None
        ``participants.tsv``, so that participants with no scan at all are listed too.
    """
    design = load_design({"design": design})
    stats_cfg = {"test": test, "alpha": alpha}
    correct = drift_correct
    drift = read_group_table(drift_path) if (drift_path and correct) else None
    bp = read_group_table(bp_path)
    expected = None if participants is None else list(participants["participant_id"])
    values, exclusions = contrast_values(bp, design, drift=drift, participants=expected)
    table = summarize_contrasts(values, test=stats_cfg.get("test", "ttest"), drift=drift,
                                alpha=float(stats_cfg.get("alpha", 0.05)))
    values, table = with_groups(values, table, design.groups, participants, drift=drift,
                                test=stats_cfg.get("test", "ttest"),
                                alpha=float(stats_cfg.get("alpha", 0.05)))
    how = ("drift-corrected: one-sample t of observed % change minus simulated null drift, "
           "the drift's Monte Carlo and systematic variance added"
           if drift is not None else "paired % change vs 0")
    common = dict(design={k: vars(v) for k, v in design.contrasts.items()},
                  null_drift_correction=drift is not None, inputs=[str(bp_path)]
                  + ([str(drift_path)] if drift is not None else []))
    write_table(out_values, values, provenance(
        Description="Per-participant paired values of each contrast, region and model; "
        "change_pct = 100 (BP_condition - BP_baseline) / BP_baseline, effect_pct = the "
        "value tested (drift or control contrast removed)", **common))
    write_table(out_exclusions, exclusions, provenance(
        Description="Participants left out of a contrast, with the reason", **common))
    write_table(out_contrasts, table, provenance(
        Description="Group contrasts per region and model: " + how + "; FDR "
        "(Benjamini-Hochberg) across regions within contrast and model",
        test=stats_cfg.get("test", "ttest"), alpha=stats_cfg.get("alpha", 0.05), **common))
    return Path(out_contrasts)


def write_correlations(values_path: str | PathLike, participants: pd.DataFrame,
                       out_path: str | PathLike, *, specs: Sequence[Mapping[str, Any]],
                       model: str, n_boot: int = 2000, n_perm: int = 5000,
                       seed: int = 0, ratings_path: str | PathLike | None = None) -> Path:
    """Correlate activation with scores (``group/correlations.tsv``); see
    :func:`pipeline.stats.correlations.correlate_scores`. ``ratings_path``:
    ``group/rating_changes.tsv`` for scores that are phenotype measures."""
    values = read_group_table(values_path)
    ratings = read_group_table(ratings_path) if ratings_path else None
    table = correlate_scores(values, participants, specs, model=model, n_boot=n_boot,
                             n_perm=n_perm, seed=seed, ratings=ratings)
    write_table(out_path, table, provenance(
        Description="Activation (BP_baseline - BP_condition, absolute and % after drift "
        "control) against participant scores: r, parametric p, permutation p "
        f"({n_perm} pairings), percentile bootstrap 95% CI ({n_boot} resamples)",
        specs=[dict(s) for s in specs], seed=seed, inputs=[str(values_path)]))
    return Path(out_path)
