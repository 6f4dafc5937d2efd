"""Participant groups of a study (patients vs controls): the config's ``design.groups`` and
each participant's label from ``participants.tsv``.

``design.groups: {column: group, levels: [HC, MDD], covariates: [age, sex]}`` names the
``participants.tsv`` column with the group labels and the labels analysed; the first level
is ``group_a``, the reference of every comparison. Participants whose label is not a level
(another group, or ``n/a``) stay in the pooled analysis and are left out of the group
analyses, with a log line each. Levels go into file names, so they match ``[A-Za-z0-9]+``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError, InputError, format_problem

__all__ = ["MIN_GROUP_SIZE", "POOLED", "Groups", "group_labels", "parse_groups"]

log = logging.getLogger(__name__)

#: Label of pooled rows (every participant) in tables with a ``group`` column.
POOLED = "all"
#: Fewest usable participants a level needs (a mean, an SD and one degree of freedom more).
MIN_GROUP_SIZE = 3

_NAME = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Groups:
    """Participant groups from a ``participants.tsv`` column (``design.groups``).

    Attributes
    ----------
    column : str
        The ``participants.tsv`` column holding each participant's group label.
    levels : tuple of str
        Group labels analysed, at least two; the first is ``group_a``, the reference of
        every comparison (each other level is compared with it).
    covariates : tuple of str
        ``participants.tsv`` columns adjusted for in the between-group linear model (e.g.
        age, sex); empty = none.
    """

    column: str
    levels: tuple[str, ...]
    covariates: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """The first level (``group_a`` of every comparison)."""
        return self.levels[0]

    @property
    def comparisons(self) -> list[tuple[str, str]]:
        """``(group_a, group_b)`` pairs: the reference against each other level."""
        return [(self.levels[0], level) for level in self.levels[1:]]


def parse_groups(spec: Any, where: str = "config/config.yaml") -> Groups | None:
    """Check ``design.groups`` (column, levels, covariates).

    Parameters
    ----------
    spec : mapping or None
        The ``design.groups`` section; None = a one-group study.
    where : str, default="config/config.yaml"
        Named in error messages.

    Returns
    -------
    Groups or None

    Raises
    ------
    ConfigError
        If the column is missing, fewer than two levels are given, a level repeats or
        holds characters other than letters and digits, or covariates are not a list of
        column names (or include the group column).

    Examples
    --------
    >>> parse_groups({"column": "group", "levels": ["HC", "MDD"]}).comparisons
    [('HC', 'MDD')]
    """
    if spec is None:
        return None
    key = "design.groups"
    if not isinstance(spec, Mapping):
        raise ConfigError(format_problem(
            where, f"{key} must be a mapping, got {spec!r}",
            "Give e.g. groups: {column: group, levels: [HC, MDD]}."))
    column = spec.get("column")
    if not isinstance(column, str) or not column.strip():
        raise ConfigError(format_problem(
            where, f"{key}.column is {column!r}",
            "Name the participants.tsv column that holds each participant's group."))
    raw = spec.get("levels")
    levels = None
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        levels = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in raw]
    if levels is None or len(levels) < 2:
        raise ConfigError(format_problem(
            where, f"{key}.levels must list at least two group labels, got {raw!r}",
            "List the column's labels, reference first, e.g. levels: [HC, MDD]."))
    for level in levels:
        if not isinstance(level, str) or not _NAME.match(level):
            raise ConfigError(format_problem(
                where, f"{key}.levels: {level!r} has characters other than A-Z, a-z, 0-9",
                "Use letters and digits only (levels go into file names); relabel the "
                "participants.tsv column if needed."))
    if len(set(levels)) < len(levels):
        raise ConfigError(format_problem(
            where, f"{key}.levels lists a label twice: {levels}", "List each group once."))
    covariates = spec.get("covariates") or []
    if isinstance(covariates, str) or not all(isinstance(c, str) and c for c in covariates):
        raise ConfigError(format_problem(
            where, f"{key}.covariates must be a list of column names, got {covariates!r}",
            "Give e.g. covariates: [age, sex], or leave it out."))
    column = column.strip()
    if column in covariates:
        raise ConfigError(format_problem(
            where, f"{key}.covariates includes the group column {column!r}",
            "Adjust for other columns only (age, sex, ...)."))
    return Groups(column, tuple(levels), tuple(covariates))


def _label(value: Any) -> str | None:
    """A group label as text (``1.0`` read from a numeric column becomes ``1``)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def group_labels(participants: pd.DataFrame, groups: Groups, *,
                 source: str | PathLike = "participants.tsv",
                 analysed: Iterable[str] | None = None) -> pd.Series:
    """Each participant's group level, indexed by ``participant_id``.

    Parameters
    ----------
    participants : DataFrame
        ``participants.tsv`` (:func:`pipeline.bids.read_participants`).
    groups : Groups
    source : str or path-like, default="participants.tsv"
        Named in error messages.
    analysed : iterable of str, default=None
        Participants with usable data (e.g. in ``contrast_values.tsv``); each level needs
        at least :data:`MIN_GROUP_SIZE` of them. None checks the table alone.

    Returns
    -------
    Series of str
        Level of every participant whose label is one of ``groups.levels``; others (another
        label or ``n/a``) are left out with a log line.

    Raises
    ------
    InputError
        If the column is missing, a level has no participant (an unknown or empty level),
        or fewer than :data:`MIN_GROUP_SIZE` usable participants.
    """
    column = groups.column
    if column not in participants.columns:
        available = [c for c in participants.columns if c != "participant_id"]
        raise InputError(format_problem(
            source, f"no column {column!r} for design.groups (columns: {available})",
            f"Add a {column} column with each participant's group ({', '.join(groups.levels)})"
            " or set design.groups.column to the column that has them."))
    raw = pd.Series([_label(v) for v in participants[column]],
                    index=pd.Index(participants["participant_id"], name="participant_id"),
                    name="group", dtype=object)
    found = sorted({v for v in raw if v is not None})
    for level in groups.levels:
        if level not in found:
            raise InputError(format_problem(
                source, f"design.groups level {level!r} has no participant in column "
                f"{column!r} (labels found: {found or 'none'})",
                "Fix the level's spelling in design.groups.levels (labels are case-"
                "sensitive) or the labels in the table."))
    inside = raw.isin(groups.levels)
    for pid, value in raw[~inside].items():
        why = "no group (n/a)" if value is None else f"group {value!r} is not one of " \
            f"design.groups.levels ({', '.join(groups.levels)})"
        log.warning("groups: %s left out of the group analyses: %s (pooled rows keep them)",
                    pid, why)
    labels = raw[inside].astype(str)
    if analysed is not None:
        usable = labels[labels.index.isin(set(analysed))]
        for level in groups.levels:
            members = sorted(usable.index[usable == level])
            if len(members) < MIN_GROUP_SIZE:
                raise InputError(format_problem(
                    source, f"group {level!r} (column {column!r}) has {len(members)} "
                    f"participant(s) with usable scans ({', '.join(members) or 'none'}); "
                    f"at least {MIN_GROUP_SIZE} are needed",
                    "Add participants to this group, merge it into another level, or "
                    "remove it from design.groups.levels."))
    return labels
