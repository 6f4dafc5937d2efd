"""A guard on the null-drift correction of within-scan contrasts.

The drift of a within-scan contrast is estimated from the data by the release model
(:mod:`pipeline.kinetics.srtm_segments`): each participant's change on the TACs with the
release taken out. That estimate rests on the model describing the scan after the bolus
transient. Where the data say otherwise, the drift-corrected effect is not reported as the
headline; the row falls back to an analysis that does not depend on the drift estimate:

* the design-based control of the same baseline and condition (a contrast with
  ``control:``, e.g. ``rejvsacc`` for ``rejection``), when the design has one, or
* no test (``p`` is NaN, so nothing is called significant), with the raw change shown.

A row trips the guard when

* the release model failed for more than a quarter of the participants that the other
  regions of the contrast have (its drift is missing for them),
* the mean drift lies far outside the changes observed across regions (more than their
  range beyond either end).

A noisy drift estimate alone does not trip it: the participants' drifts enter the test
with their own scatter, so noise costs power, not validity.

The reason is written in the ``guard`` column and the report states it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.design import Design

__all__ = ["TEST_COLUMNS", "apply_guard", "fallback_contrasts"]

log = logging.getLogger(__name__)

#: Columns that describe the tested effect, copied from a fallback row.
TEST_COLUMNS = ["effect_pct_mean", "effect_pct_sd", "mean_ci_low", "mean_ci_high", "t", "df",
                "p", "cohen_dz", "ci_low", "ci_high", "wilcoxon_w", "wilcoxon_p", "test",
                "control_change_pct_mean", "n"]


def fallback_contrasts(design: Design | None) -> dict[str, str]:
    """Plain contrast -> a design-based contrast with the same baseline and condition.

    Parameters
    ----------
    design : Design or None
        The study design; None has no fallbacks.

    Returns
    -------
    dict
        For each plain within-scan contrast that has one, the name of a contrast whose
        ``control`` removes the drift by design.
    """
    if design is None:
        return {}
    out = {}
    for name, spec in design.contrasts.items():
        if spec.control is not None:
            continue
        for other, ctl in design.contrasts.items():
            if ctl.control is not None and (ctl.baseline, ctl.condition) == \
                    (spec.baseline, spec.condition):
                out[name] = other
                break
    return out


def _reasons(table: pd.DataFrame) -> pd.Series:
    """The guard's reason per row ('' = passes); only release-model rows are checked."""
    reasons = pd.Series("", index=table.index, dtype=object)
    checked = table["drift_method"] == "release_model"
    for _, idx in table[checked].groupby(["contrast", "model"]).groups.items():
        cell = table.loc[idx]
        expected = table.loc[(table["contrast"] == cell["contrast"].iloc[0])
                             & (table["model"] == cell["model"].iloc[0]), "n"].max()
        changes = cell["change_pct_mean"].dropna()
        low, high = (changes.min(), changes.max()) if len(changes) else (np.nan, np.nan)
        width = max(high - low, float(np.nanmedian(cell["change_pct_sd"])), 1.0) \
            if len(changes) else np.nan
        for i, row in cell.iterrows():
            found = []
            if expected and row["n"] < 0.75 * expected:
                found.append(f"release model fitted {int(row['n'])} of {int(expected)} "
                             "participants")
            if np.isfinite(width) and not (low - width <= row["drift_pct"] <= high + width):
                found.append(f"drift {row['drift_pct']:+.1f} % lies far outside the changes "
                             f"observed across regions ({low:+.1f} to {high:+.1f} %)")
            reasons[i] = "; ".join(found)
    return reasons


def apply_guard(table: pd.DataFrame, values: pd.DataFrame, design: Design | None
                ) -> pd.DataFrame:
    """Mark rows whose drift correction the data contradict and switch their headline.

    Parameters
    ----------
    table : DataFrame
        Rows of :func:`pipeline.stats.contrast_tests.summarize_contrasts` before FDR, with
        ``headline`` and ``guard`` columns.
    values : DataFrame
        The per-participant values the rows summarize (unused columns are ignored).
    design : Design or None
        For the design-based fallbacks.

    Returns
    -------
    DataFrame
        A copy with ``guard`` (reason or ``""``) and, on tripped rows, the fallback's test
        columns and ``headline`` (``control_corrected (<contrast>)`` or ``raw (drift not
        controlled)``).
    """
    table = table.copy()
    reasons = _reasons(table)
    fallbacks = fallback_contrasts(design)
    keyed = table.set_index(["contrast", "region", "model"])
    for i in reasons[reasons != ""].index:
        row = table.loc[i]
        table.at[i, "guard"] = reasons[i]
        other = fallbacks.get(row["contrast"])
        key = (other, row["region"], row["model"])
        if other is not None and key in keyed.index:
            source = keyed.loc[key]
            for column in TEST_COLUMNS:
                table.at[i, column] = source[column]
            table.at[i, "headline"] = f"control_corrected ({other})"
        else:
            for column in ("t", "df", "p", "mean_ci_low", "mean_ci_high", "wilcoxon_w",
                           "wilcoxon_p"):
                table.at[i, column] = np.nan
            table.at[i, "effect_pct_mean"] = row["change_pct_mean"]
            table.at[i, "effect_pct_sd"] = row["change_pct_sd"]
            table.at[i, "headline"] = "raw (drift not controlled)"
        log.warning("contrast %s, %s, %s: drift correction not used (%s); headline: %s",
                    row["contrast"], row["region"], row["model"], reasons[i],
                    table.at[i, "headline"])
    return table
