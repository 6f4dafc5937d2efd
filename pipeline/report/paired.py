"""Per-subject baseline and condition BP_ND of a contrast, for paired plots and scatters.

The group tables hold means and tests; the plots need each subject's two values. They
are rebuilt here from ``group/bp_nd.tsv`` with the contrast definitions of the config
(or, when the config does not define them, the convention of the default design: the
contrast is named after its condition and is paired with the ``baseline`` condition of
the same scan, or of a separate baseline scan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "activation_scores",
    "contrast_conditions",
    "paired_from_values",
    "paired_values",
]

_BASELINE_KEYS = ("baseline", "reference", "control", "from")
_CONDITION_KEYS = ("condition", "test", "active", "to")


def _contrast_definitions(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    places = [config.get("contrasts")]
    for key in ("design", "stats"):
        section = config.get(key)
        if isinstance(section, Mapping):
            places.append(section.get("contrasts"))
    found: dict[str, dict[str, Any]] = {}
    for place in places:
        if isinstance(place, Mapping):
            items = [(str(k), v) for k, v in place.items()]
        elif isinstance(place, list):
            items = [(str(v.get("name", i)), v) for i, v in enumerate(place)
                     if isinstance(v, Mapping)]
        else:
            continue
        for name, spec in items:
            if isinstance(spec, Mapping):
                found.setdefault(name, dict(spec))
    return found


def _label(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("condition", "name", "label"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


def contrast_conditions(contrast: str, config: Mapping[str, Any]) -> tuple[str, str]:
    """The (baseline, condition) condition labels of ``contrast``.

    Parameters
    ----------
    contrast : str
        Contrast name as in ``contrasts.tsv``.
    config : mapping
        The configuration that ran.

    Returns
    -------
    (str, str)
        Labels as in the ``condition`` column of ``bp_nd.tsv``; defaults to
        ``("baseline", contrast)``.
    """
    spec = _contrast_definitions(config).get(contrast, {})
    baseline = next((_label(spec[k]) for k in _BASELINE_KEYS if _label(spec.get(k))), None)
    condition = next((_label(spec[k]) for k in _CONDITION_KEYS if _label(spec.get(k))), None)
    return baseline or "baseline", condition or contrast


def paired_values(bp_nd: pd.DataFrame, contrast: str, config: Mapping[str, Any],
                  model: str | None = None) -> pd.DataFrame:
    """Each subject's baseline and condition BP_ND for one contrast.

    Parameters
    ----------
    bp_nd : DataFrame
        ``group/bp_nd.tsv``.
    contrast : str
        Contrast name.
    config : mapping
        The configuration that ran (for the contrast's conditions).
    model : str, default=None
        Keep only this model.

    Returns
    -------
    DataFrame
        Columns ``participant_id``, ``region``, ``model``, ``baseline``, ``condition``
        (BP_ND, unitless), ``activation`` (baseline - condition) and ``change_pct``
        (100 x (condition - baseline) / baseline). Subjects without both are left out.
    """
    baseline_label, condition_label = contrast_conditions(contrast, config)
    table = bp_nd if model is None else bp_nd[bp_nd["model"] == model]
    keys = ["participant_id", "region", "model"]
    cond = table[table["condition"].astype(str) == condition_label]
    base = table[table["condition"].astype(str) == baseline_label]
    if "task" in table and not cond.empty:
        # Within-scan windows: pair with the baseline window of the same scan when it exists.
        scan_cols = [c for c in ("participant_id", "session", "task", "run") if c in table]
        same = base.merge(cond[scan_cols].drop_duplicates(), on=scan_cols, how="inner")
        if not same.empty:
            base = same
    columns = [*keys, "bp_nd"]
    cond_mean = cond[columns].groupby(keys, as_index=False)["bp_nd"].mean()
    base_mean = base[columns].groupby(keys, as_index=False)["bp_nd"].mean()
    paired = base_mean.merge(cond_mean, on=keys, suffixes=("_baseline", "_condition"))
    paired = paired.rename(columns={"bp_nd_baseline": "baseline", "bp_nd_condition": "condition"})
    paired["activation"] = paired["baseline"] - paired["condition"]
    with np.errstate(divide="ignore", invalid="ignore"):
        paired["change_pct"] = (100.0 * (paired["condition"] - paired["baseline"])
                                / paired["baseline"])
    return paired.sort_values(keys, ignore_index=True)


def activation_scores(paired: pd.DataFrame, participants: pd.DataFrame, score: str,
                      region: str, measure: str = "activation") -> pd.DataFrame:
    """Join one region's activation with a participant score.

    Parameters
    ----------
    paired : DataFrame
        From :func:`paired_values` (one model).
    participants : DataFrame
        ``participants.tsv``.
    score : str
        Score column of ``participants``.
    region : str
        Region name.
    measure : str, default="activation"
        A column of ``paired`` (``activation`` in BP_ND units, ``activation_pct``,
        ``change_pct``...); ``activation_pct`` is -change_pct when the column is absent.

    Returns
    -------
    DataFrame
        ``participant_id``, ``x`` (the activation measure), ``y`` (the score), finite rows only.
    """
    rows = paired[paired["region"] == region]
    if measure in rows:
        x = rows[measure]
    elif measure == "activation_pct":
        x = -rows["change_pct"]
    else:
        x = rows["activation"]
    joined = pd.DataFrame({"participant_id": rows["participant_id"], "x": x.to_numpy()})
    scores = participants[["participant_id", score]].rename(columns={score: "y"})
    joined = joined.merge(scores, on="participant_id", how="inner")
    joined["y"] = pd.to_numeric(joined["y"], errors="coerce")
    return joined[np.isfinite(joined["x"]) & np.isfinite(joined["y"])].reset_index(drop=True)


def paired_from_values(values: pd.DataFrame, contrast: str,
                       model: str | None = None) -> pd.DataFrame:
    """The rows of ``group/contrast_values.tsv`` for one contrast, in :func:`paired_values` form.

    Parameters
    ----------
    values : DataFrame
        ``contrast_values.tsv``: ``contrast``, ``participant_id``, ``region``, ``model``,
        ``bp_baseline``, ``bp_condition``, ``change_pct``, ``activation`` and, when the
        workflow wrote them, ``effect_pct``, ``activation_pct``, ``control_change_pct``.
    contrast : str
    model : str, default=None
        Keep only this model.

    Returns
    -------
    DataFrame
        ``participant_id``, ``region``, ``model``, ``baseline``, ``condition`` and every
        other column of the table.
    """
    rows = values[values["contrast"].astype(str) == contrast]
    if model is not None:
        rows = rows[rows["model"].astype(str) == model]
    rows = rows.rename(columns={"bp_baseline": "baseline", "bp_condition": "condition"})
    return rows.reset_index(drop=True)
