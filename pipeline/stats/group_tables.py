"""The ``write_*`` steps of the group comparison and the ratings: read the group tables,
``participants.tsv`` and ``phenotype/``, call :mod:`pipeline.stats.groups` and
:mod:`pipeline.stats.ratings`, write ``group/group_differences.tsv``,
``group/rating_changes.tsv`` and ``group/rating_tests.tsv``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.design import Design
from pipeline.errors import InputError, format_problem
from pipeline.groups import Groups, group_labels
from pipeline.phenotype import read_ratings
from pipeline.stats.groups import group_differences
from pipeline.stats.protocols import compare_protocols, scan_protocols
from pipeline.stats.ratings import rating_changes, rating_tests
from pipeline.stats.tables import read_group_table
from pipeline.tables import provenance, write_table

__all__ = ["rating_measures", "write_group_differences", "write_ratings"]

log = logging.getLogger(__name__)


def write_group_differences(values_path: str | PathLike, participants: pd.DataFrame,
                            out_path: str | PathLike, *, groups: Groups,
                            scans: Sequence[Any] = (), n_perm: int = 5000,
                            alpha: float = 0.05, seed: int = 0,
                            source: str | PathLike = "participants.tsv") -> Path:
    """Write ``group/group_differences.tsv`` (see :func:`group_differences`).

    Parameters
    ----------
    values_path : path-like
        ``group/contrast_values.tsv``.
    participants : DataFrame
        ``participants.tsv`` (group column and covariates).
    out_path : path-like
    groups : Groups
    scans : sequence of :class:`pipeline.bids.Scan`, default=()
        The analysed scans; their sidecars give each group's protocol (Kbol, frames),
        checked by :func:`pipeline.stats.protocols.compare_protocols`.
    n_perm, alpha, seed
        See :func:`group_differences`.
    source : str or path-like
        The participants file, named in error messages.
    """
    values = read_group_table(values_path)
    labels = group_labels(participants, groups, source=source,
                          analysed=values["participant_id"].unique())
    table = group_differences(values, labels, groups, participants=participants,
                              n_perm=n_perm, alpha=alpha, seed=seed, source=source)
    protocol = compare_protocols(scan_protocols(scans), labels) if scans else None
    write_table(out_path, table, provenance(
        Description="Between-group differences of activation per contrast, region, model: "
        "activation = -(% change of BP_ND) (minus the control contrast's change for double "
        "differences), without null-drift correction (the drift is the same for groups "
        "scanned with one protocol and cancels in the difference); difference = "
        "activation_a - activation_b with Welch 95% CI, t, df and p; p_fdr: Benjamini-"
        "Hochberg across regions per contrast, model and comparison; hedges_g with a "
        "noncentral-t 95% CI; p_perm: label permutation of Welch's t; *_adj: OLS "
        "activation ~ 1 + group + covariates",
        group_column=groups.column, levels=list(groups.levels),
        covariates=list(groups.covariates), n_perm=n_perm, alpha=alpha, seed=seed,
        participants={level: sorted(labels.index[labels == level]) for level in
                      groups.levels},
        protocols=protocol, inputs=[str(values_path), str(source)]))
    return Path(out_path)


def rating_measures(specs: Sequence[Mapping[str, Any]], participants: pd.DataFrame
                    ) -> dict[str, set[str]]:
    """Measure -> contrasts of the correlations whose score is not a participants.tsv
    column (so a rating change of ``phenotype/<score>.tsv``).

    Parameters
    ----------
    specs : sequence of mapping
        ``statistics.correlations`` entries (``contrast``, ``score``).
    participants : DataFrame
        ``participants.tsv``.
    """
    needed: dict[str, set[str]] = {}
    for spec in specs:
        if spec["score"] not in participants.columns:
            needed.setdefault(spec["score"], set()).add(spec["contrast"])
    return needed


def write_ratings(phenotype: Mapping[str, str | PathLike], values_path: str | PathLike,
                  participants: pd.DataFrame, out_changes: str | PathLike,
                  out_tests: str | PathLike, *, design: Design,
                  correlations: Sequence[Mapping[str, Any]] = (), n_perm: int = 5000,
                  seed: int = 0, source: str | PathLike = "participants.tsv") -> Path:
    """Rating changes per participant and their tests (``group/rating_changes.tsv``,
    ``group/rating_tests.tsv``); empty tables when the dataset has no ratings.

    Parameters
    ----------
    phenotype : mapping of str to path-like
        Measure -> ``phenotype/<measure>.tsv`` (:func:`pipeline.phenotype.phenotype_files`).
    values_path : path-like
        ``group/contrast_values.tsv``: who has scans.
    participants : DataFrame
        ``participants.tsv`` (group column when ``design.groups`` is set).
    out_changes, out_tests : path-like
    design : Design
    correlations : sequence of mapping, default=()
        ``statistics.correlations``: a ``score`` that is not a participants.tsv column
        names a measure whose file must have the contrast's condition columns.
    n_perm, seed : int
        Label permutations of the between-group tests and their seed.
    source : str or path-like, default="participants.tsv"
        The participants file, named in errors and sidecars.

    Raises
    ------
    InputError
        If a measure named by a correlation has no file, or its file lacks a needed
        condition column or holds non-numeric ratings.
    """
    needed = rating_measures(correlations, participants)
    for spec in correlations:
        if spec["score"] in participants.columns and spec["score"] in phenotype:
            log.warning("correlations: score %r is a participants.tsv column and a phenotype "
                        "file; the participants.tsv column is used", spec["score"])
    missing = sorted(set(needed) - set(phenotype))
    if missing:
        raise InputError(format_problem(
            source, f"statistics.correlations score(s) {missing} are neither columns of "
            f"participants.tsv nor phenotype/<measure>.tsv files (found: "
            f"{sorted(phenotype) or 'none'})",
            "Add the column or the phenotype file, or fix the score's spelling."))
    conditions = list(design.conditions)
    ratings = []
    for measure, path in sorted(phenotype.items()):
        required = {c for contrast in needed.get(measure, ())
                    for c in design.conditions_of(contrast)}
        rating = read_ratings(path, conditions, required=sorted(required))
        if not set(conditions) & set(rating.table.columns):
            continue  # a questionnaire without condition columns: not a rating of conditions
        ratings.append(rating)
    scanned = read_group_table(values_path)["participant_id"].unique()
    labels = None
    if design.groups is not None:
        labels = group_labels(participants, design.groups, source=source, analysed=scanned)
    excluded: list[dict[str, str]] = []
    changes = rating_changes(ratings, design, scanned=scanned, labels=labels,
                             required=needed, excluded=excluded)
    tests = rating_tests(changes, design.groups, n_perm=n_perm, seed=seed)
    measures = {r.measure: {"file": str(r.path), "description": r.description,
                            "units": r.units} for r in ratings}
    common = dict(measures=measures, excluded=excluded,
                  inputs=[str(values_path), *map(str, phenotype.values())])
    write_table(out_changes, changes, provenance(
        Description="Rating change per participant, contrast and phenotype measure: "
        "rating(condition) - rating(baseline), minus the control contrast's rating change "
        "for double differences", **common))
    write_table(out_tests, tests, provenance(
        Description="Rating changes tested within each group (one-sample t against 0, "
        "Wilcoxon signed-rank, Cohen's dz) and between groups (difference a - b, Welch t "
        "and 95% CI, Hedges' g, label-permutation p)", n_perm=n_perm, seed=seed, **common))
    return Path(out_tests)
