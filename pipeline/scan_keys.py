"""Which scans hold which conditions, as patterns of the workflow's scan keys.

A scan key is ``<rel_dir>/<stem>``, e.g. ``sub-01/ses-1/pet/sub-01_ses-1_task-rejection_run-1``
(:class:`pipeline.bids.Scan`: entities in BIDS order, sub, ses, task, ...). The workflow
writes all the maps of a scan in one job, and a Snakemake rule's outputs are fixed, so it has
one map rule per set of conditions a scan can hold; :func:`condition_sets` gives those sets
and, for each, a regular expression matching exactly the keys of the scans that hold it.
They follow from the design alone (a condition is a task and, optionally, a session), so they
are known before any scan is found (the demo's scans exist only once simulated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["condition_sets", "scan_key_pattern"]

_LABEL = "[A-Za-z0-9]+"


def scan_key_pattern(task: str, session: str | None = None,
                     other_sessions: Iterable[str] = ()) -> str:
    """A regular expression of the scan keys of ``task`` in ``session``.

    Parameters
    ----------
    task : str
        BIDS task label.
    session : str or None, default=None
        BIDS session label; None matches scans without a session and scans in any session
        but ``other_sessions``.
    other_sessions : iterable of str, default=()
        Sessions left out when ``session`` is None.

    Returns
    -------
    str
        A pattern to match whole keys (``re.fullmatch``), without anchors.
    """
    if session is not None:
        ses_dir, ses_entity = f"ses-{re.escape(session)}/", f"_ses-{re.escape(session)}"
    else:
        skip = "|".join(re.escape(s) for s in other_sessions)
        ses_dir = f"(?:ses-{f'(?!(?:{skip})/)' if skip else ''}{_LABEL}/)?"
        ses_entity = f"(?:_ses-{_LABEL})?"
    return (f"sub-{_LABEL}/{ses_dir}pet/sub-{_LABEL}{ses_entity}_task-{re.escape(task)}"
            f"(?:_[a-z]+-{_LABEL})*")


def condition_sets(design: Any) -> list[tuple[tuple[str, ...], str]]:
    """The distinct sets of conditions a scan can hold, each with the keys that hold it.

    Parameters
    ----------
    design : pipeline.design.Design
        Its ``conditions`` (name -> condition with ``task``, ``session`` and ``matches``).

    Returns
    -------
    list of (tuple of str, str)
        Condition names in design order, and a pattern (:func:`scan_key_pattern`
        alternatives) matching exactly the keys of the scans holding that set; the patterns
        of different sets match no key in common. Scans in no condition match none.
    """
    conditions = list(design.conditions.values())
    sets: dict[tuple[str, ...], list[str]] = {}
    for task in dict.fromkeys(c.task for c in conditions):
        named = list(dict.fromkeys(c.session for c in conditions
                                   if c.task == task and c.session is not None))
        for session in [*named, None]:
            names = tuple(c.name for c in conditions if c.matches(task, session))
            if names:
                sets.setdefault(names, []).append(scan_key_pattern(task, session, named))
    return [(names, "|".join(f"(?:{p})" for p in patterns)) for names, patterns in sets.items()]
