"""``petbp check`` of a patient-vs-control design and condition-level ratings: the group
column and levels of ``participants.tsv`` and the ``phenotype/`` files a config asks for,
read and checked before anything is computed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.design import load_design
from pipeline.groups import group_labels
from pipeline.phenotype import phenotype_files, read_ratings

__all__ = ["check_groups_and_ratings", "rating_scores"]


def rating_scores(config: Mapping[str, Any], participants: pd.DataFrame,
                  bids_dir: str | PathLike) -> dict[str, set[str]]:
    """Correlation scores that are phenotype measures (not participants.tsv columns, with
    a ``phenotype/<score>.tsv``): measure -> contrasts.

    Parameters
    ----------
    config : mapping
        The validated config.
    participants : DataFrame
        ``participants.tsv`` as read by :func:`pipeline.bids.read_participants`.
    bids_dir : path-like
        Dataset root (its ``phenotype/`` folder).

    Parameters
    ----------
    config : mapping
        The validated config (``statistics.correlations``).
    participants : DataFrame
        ``participants.tsv`` as read by :func:`pipeline.bids.read_participants`.
    bids_dir : path-like
        Dataset root (its ``phenotype/`` folder).
    """
    measures = phenotype_files(bids_dir)
    needed: dict[str, set[str]] = {}
    for spec in (config.get("statistics") or {}).get("correlations") or []:
        score = str(spec.get("score"))
        if score not in participants.columns and score in measures:
            needed.setdefault(score, set()).add(str(spec.get("contrast")))
    return needed


def check_groups_and_ratings(config: Mapping[str, Any], participants: pd.DataFrame,
                             bids_dir: str | PathLike, analysed: Sequence[str],
                             attempt: Callable[[Callable[[], Any]], Any]) -> list[str]:
    """Summary lines of the groups and rating files; problems go through ``attempt``.

    Parameters
    ----------
    config : mapping
        The validated config.
    participants : DataFrame
        ``participants.tsv``.
    bids_dir : path-like
    analysed : sequence of str
        Participants with scans (``sub-<label>``).
    attempt : callable
        Runs a check and records its error (``petbp check``'s problem list).
    """
    design = attempt(lambda: load_design(config))
    if design is None:
        return []
    lines = []
    source = Path(bids_dir) / "participants.tsv"
    if design.groups is not None:
        labels = attempt(lambda: group_labels(participants, design.groups, source=source,
                                              analysed=analysed))
        if labels is not None:
            counts = labels[labels.index.isin(set(analysed))].value_counts()
            lines.append(f"groups ({design.groups.column}): " + ", ".join(
                f"{lv} {int(counts.get(lv, 0))}" for lv in design.groups.levels)
                + f"; reference {design.groups.reference}")
    needed = rating_scores(config, participants, bids_dir)
    for measure, path in phenotype_files(bids_dir).items():
        required = sorted({c for contrast in needed.get(measure, ())
                           if contrast in design.contrasts
                           for c in design.conditions_of(contrast)})
        rating = attempt(lambda p=path, r=required: read_ratings(p, list(design.conditions),
                                                                 required=r))
        if rating is not None:
            columns = [c for c in rating.table.columns if c != "participant_id"]
            extra = sorted(set(rating.table["participant_id"]) - set(analysed))
            lines.append(f"ratings {measure}: {len(rating.table)} participants, condition "
                         f"columns {', '.join(columns) or 'none'}"
                         + (f"; without scans (left out): {', '.join(extra)}" if extra
                            else ""))
    return lines
