"""A participant's within-scan null drift from all its scans that share the windows.

The release model's drift estimate of one scan (:mod:`pipeline.kinetics.release`) is noisy:
on petbp's simulator its per-participant SD is larger than that of the change it corrects.
A participant's scans of one protocol with the same baseline and condition windows (the
rejection and the acceptance scan of the default design) share the null drift: the windows,
the input and the participant's kinetics are the same, only the release differs, and that is
what the release model takes out. Averaging their drifts halves the drift's noise variance;
the effect of one contrast then is its change minus that mean. Equivalently it is the mean of
two estimates of the release: the release model's own, and the design-based double
difference (change minus the other scan's change) plus the other scan's release-model
release. It assumes the scans differ in release only (same protocol); where they do not
(another Kbol, another frame schedule), pooling mixes their drifts.
"""

from __future__ import annotations

import pandas as pd

from pipeline.design import Design

__all__ = ["DRIFT_POOLS", "pool_drift_over_scans", "windows_groups"]

#: How a participant's within-scan drift is formed (``statistics.null_drift.pool``): mean
#: over the scans with the same windows (``scans``), or each scan's own (``none``).
DRIFT_POOLS = ("scans", "none")

_KEYS = ["participant_id", "region", "model"]


def windows_groups(tables: dict[str, pd.DataFrame], design: Design
                   ) -> dict[tuple, list[str]]:
    """The drift-corrected contrasts grouped by their (baseline, condition) windows.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Per plain contrast, its per-participant rows (with ``drift_method``).
    design : Design
        Gives each contrast's windows (minutes).

    Returns
    -------
    dict of tuple to list of str
        (baseline window, condition window) -> names of the contrasts whose every row has
        ``drift_method`` ``release_model``.
    """
    groups: dict[tuple, list[str]] = {}
    for name, table in tables.items():
        if len(table) and (table["drift_method"] == "release_model").all():
            spec = design.contrasts[name]
            key = (design.conditions[spec.baseline].window,
                   design.conditions[spec.condition].window)
            groups.setdefault(key, []).append(name)
    return groups


def pool_drift_over_scans(tables: dict[str, pd.DataFrame], design: Design
                           ) -> dict[str, pd.DataFrame]:
    """Average each participant's drift over the drift-corrected contrasts with the same windows.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Per plain contrast, its per-participant rows (``participant_id``, ``region``,
        ``model``, ``drift_pct`` in % points, ``drift_method``, ``drift_scans``).
    design : Design
        Gives each contrast's baseline and condition windows (minutes).

    Returns
    -------
    dict of str to DataFrame
        The same tables; in contrasts whose every row has ``drift_method`` ``release_model``,
        ``drift_pct`` is the participant's mean drift over the contrasts with the same
        windows and ``drift_scans`` how many it averages (1 where the participant has only
        this contrast's).
    """
    out = dict(tables)
    for names in windows_groups(tables, design).values():
        own = pd.concat([tables[n][[*_KEYS, "drift_pct"]] for n in names])
        pooled = own.groupby(_KEYS)["drift_pct"].agg(["mean", "size"])
        for n in names:
            table = tables[n].drop(columns=["drift_pct", "drift_scans"]).merge(
                pooled.rename(columns={"mean": "drift_pct", "size": "drift_scans"}),
                left_on=_KEYS, right_index=True, how="left")
            out[n] = table
    return out
