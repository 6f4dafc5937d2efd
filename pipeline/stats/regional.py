"""Region-wise paired contrasts: baseline vs condition BP_ND within each participant.

For every contrast, region and model, each participant contributes one paired value, the
% change ``100 (BP_condition - BP_baseline) / BP_baseline`` (negative = release). What is
tested (``effect_pct``) is that change

* minus the change of the ``control`` contrast at the same times, when the contrast has a
  control (design-based drift control, a double difference), or
* minus the participant's own null drift, for plain contrasts within one scan when the
  condition fits carry ``bp_nd_null`` (the model's BP_ND on the scan's TACs with the
  release model's estimate of the release removed, :mod:`pipeline.kinetics.release`):
  ``drift = 100 (null_condition - null_baseline) / null_baseline``, by default averaged over
  the participant's scans with the same windows (:mod:`pipeline.stats.drift_pool`); the
  one-sample t test of ``change - drift`` adds a systematic variance ``sys_sd^2`` (the
  residual drift of the release model that the data cannot show), or
* against zero (a paired t test on the % change) otherwise.

Participants without a scan (or whose scan was excluded, e.g. for head motion, with that
reason), or with a non-finite or non-positive baseline BP_ND, are left out of that contrast
and listed, with the reason, in the exclusions table; nothing is dropped silently. FDR
(Benjamini-Hochberg) runs across regions within each contrast and model.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.design import Design
from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.stats.drift_pool import DRIFT_POOLS, pool_drift_over_scans
from pipeline.stats.drift_regions import pool_drift_over_regions

__all__ = ["contrast_values"]

log = logging.getLogger(__name__)

_KEYS = ["participant_id", "region", "model"]


def _condition_table(bp: pd.DataFrame, condition: str) -> pd.DataFrame:
    """Mean BP_ND (and BP_ND without release) per participant, region and model for one
    condition (runs averaged)."""
    rows = bp[bp["condition"] == condition]
    columns = [c for c in ("bp_nd", "bp_nd_null") if c in rows.columns]
    return rows.groupby(_KEYS, as_index=False)[columns].mean()


def _exclusion(contrast: str, pid: str, reason: str, region: str = "all",
               model: str = "all") -> dict[str, str]:
    return {"contrast": contrast, "participant_id": pid, "region": region, "model": model,
            "reason": reason}


def _missing_reason(design: Design, label: str, pid: str,
                    excluded_scans: list[dict] | None) -> str:
    """Why participant ``pid`` has no BP_ND for condition ``label``: its scan of that task
    was excluded (the reason given), or it has none."""
    condition = design.conditions[label]
    for scan in excluded_scans or []:
        if scan.get("participant_id") == pid and scan.get("task") == condition.task and (
                condition.session is None or scan.get("session") == condition.session):
            return (f"no BP_ND for condition '{label}': its task-{condition.task} scan was "
                    f"{scan.get('reason') or 'excluded'}")
    return f"no BP_ND for condition '{label}' (no task-{condition.task} scan)"


def _paired(bp: pd.DataFrame, design: Design, name: str, participants: list[str],
            exclusions: list[dict], excluded_scans: list[dict] | None = None
            ) -> pd.DataFrame:
    """Per-participant baseline, condition and % change for a plain contrast."""
    spec = design.contrasts[name]
    base = _condition_table(bp, spec.baseline)
    cond = _condition_table(bp, spec.condition)
    for label, table in ((spec.baseline, base), (spec.condition, cond)):
        for pid in sorted(set(participants) - set(table["participant_id"])):
            exclusions.append(_exclusion(
                name, pid, _missing_reason(design, label, pid, excluded_scans)))
    merged = base.merge(cond, on=_KEYS, suffixes=("_baseline", "_condition"))
    merged = merged.rename(columns={"bp_nd_baseline": "bp_baseline",
                                    "bp_nd_condition": "bp_condition",
                                    "bp_nd_null_baseline": "null_baseline",
                                    "bp_nd_null_condition": "null_condition"})
    finite = np.isfinite(merged["bp_baseline"]) & np.isfinite(merged["bp_condition"])
    positive = merged["bp_baseline"] > 0
    for _, row in merged[~finite].iterrows():
        exclusions.append(_exclusion(name, row.participant_id,
                                     "BP_ND not finite (failed fit)", row.region, row.model))
    for _, row in merged[finite & ~positive].iterrows():
        exclusions.append(_exclusion(
            name, row.participant_id,
            f"baseline BP_ND {row.bp_baseline:.3g} <= 0: % change undefined",
            row.region, row.model))
    merged = merged[finite & positive].copy()
    merged["change_pct"] = 100.0 * (merged["bp_condition"] - merged["bp_baseline"]) \
        / merged["bp_baseline"]
    merged["activation"] = merged["bp_baseline"] - merged["bp_condition"]
    if "null_baseline" in merged.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            merged["null_change_pct"] = np.where(
                merged["null_baseline"] > 0, 100.0 * (merged["null_condition"]
                                                      - merged["null_baseline"])
                / merged["null_baseline"], np.nan)
        merged = merged.drop(columns=["null_baseline", "null_condition"])
    else:
        merged["null_change_pct"] = np.nan
    return merged


def contrast_values(bp: pd.DataFrame, design: Design, *, drift_correct: bool = True,
                    participants: list[str] | None = None, drift_pool: str = "scans",
                    excluded_scans: list[dict] | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant paired values of every contrast.

    Parameters
    ----------
    bp : DataFrame
        ``group/bp_nd.tsv``: ``participant_id``, ``condition``, ``region``, ``model``,
        ``bp_nd`` (several runs of one condition are averaged).
    design : Design
        Conditions and contrasts (:func:`pipeline.design.load_design`).
    drift_correct : bool, default=True
        Subtract each participant's null drift (from ``bp_nd_null``) in plain within-scan
        contrasts; False tests the raw change.
    participants : list of str, default=None
        Everyone expected (e.g. from ``participants.tsv``); default: all in ``bp``.
    drift_pool : {"scans", "regions", "none"}, default="scans"
        ``scans``: a participant's drift is the mean over its within-scan contrasts with
        the same windows (:mod:`pipeline.stats.drift_pool`); ``none``: its own scan's;
        ``regions``: the ``scans`` mean blended with a regression across the participant's
        regions on baseline BP_ND (:mod:`pipeline.stats.drift_regions`; adds
        ``drift_lack_sd`` and ``drift_weight``) - for ``benchmarks/bench_drift.py`` only,
        not a config value: it failed the calibration there (see that module).
    excluded_scans : list of dict, default=None
        Scans left out before the fits (``participant_id``, ``session``, ``task``,
        ``reason``; e.g. for head motion): a participant missing a condition because of one
        is listed with that reason, and counted as expected.

    Returns
    -------
    values : DataFrame
        One row per contrast, participant, region and model: ``bp_baseline``,
        ``bp_condition``, ``change_pct``, ``control_change_pct``, ``drift_pct`` (the
        participant's null drift, 0 where none applies), ``drift_scans`` (how many scans'
        drifts it averages), ``drift_method``
        (``release_model``, ``control`` or ``none``), ``effect_pct`` (the value tested, see
        the module text), ``activation``
        (BP_baseline - BP_condition, control subtracted for double differences) and
        ``activation_pct`` (= -``effect_pct``).
    exclusions : DataFrame
        ``contrast``, ``participant_id``, ``region``, ``model``, ``reason``.
    """
    if drift_pool not in (*DRIFT_POOLS, "regions"):
        raise ConfigError(format_problem(
            "config/config.yaml", f"statistics.null_drift.pool is {drift_pool!r}",
            f"Choose one of {', '.join(DRIFT_POOLS)}."))
    missing = {"participant_id", "condition", "region", "model", "bp_nd"} - set(bp.columns)
    if missing:
        raise InputError(format_problem(
            "group/bp_nd.tsv", f"missing column(s) {', '.join(sorted(missing))}",
            "Rebuild it with the workflow's collect_bp_nd rule."))
    participants = sorted(set(participants or []) | set(bp["participant_id"])
                          | {s["participant_id"] for s in excluded_scans or []})
    exclusions: list[dict] = []
    plain: dict[str, pd.DataFrame] = {}
    for name, spec in design.contrasts.items():
        if spec.control is None:
            plain[name] = _paired(bp, design, name, participants, exclusions,
                                  excluded_scans)
    drifted: dict[str, pd.DataFrame] = {}
    for name, spec in design.contrasts.items():
        if spec.control is None:
            table = plain[name].copy()
            table["control_change_pct"] = np.nan
            table["drift_pct"] = 0.0
            table["drift_method"] = "none"
            table["drift_scans"] = 0
            if drift_correct and design.within_scan(name):
                table = _subtract_null_drift(table, name, exclusions)
            drifted[name] = table
    if drift_pool in ("scans", "regions"):
        drifted = pool_drift_over_scans(drifted, design)
    if drift_pool == "regions":
        drifted = pool_drift_over_regions(drifted, design)
    tables = []
    for name, spec in design.contrasts.items():
        if spec.control is None:
            table = drifted[name]
            table["effect_pct"] = table["change_pct"] - table["drift_pct"]
        else:
            ctl = plain.get(spec.control)
            if ctl is None:
                ctl = _paired(bp, design, spec.control, participants, [])
            own = plain.get(name) if name in plain else \
                _paired(bp, design, name, participants, exclusions, excluded_scans)
            for pid in sorted(set(own["participant_id"]) - set(ctl["participant_id"])):
                exclusions.append(_exclusion(
                    name, pid, f"no paired values for control contrast '{spec.control}'"))
            table = own.merge(ctl[[*_KEYS, "change_pct", "activation"]], on=_KEYS,
                              suffixes=("", "_control"))
            table = table.rename(columns={"change_pct_control": "control_change_pct"})
            table["activation"] = table["activation"] - table.pop("activation_control")
            table["drift_pct"] = 0.0
            table["drift_method"] = "control"
            table["drift_scans"] = 0
            table["effect_pct"] = table["change_pct"] - table["control_change_pct"]
        table["activation_pct"] = -table["effect_pct"]
        table.insert(0, "contrast", name)
        tables.append(table)
    values = pd.concat(tables, ignore_index=True)
    excl = pd.DataFrame(exclusions, columns=["contrast", "participant_id", "region", "model",
                                             "reason"]).drop_duplicates()
    for row in excl.itertuples():
        log.warning("contrast %s: %s left out (%s, %s): %s", row.contrast, row.participant_id,
                    row.region, row.model, row.reason)
    return values, excl


def _subtract_null_drift(table: pd.DataFrame, name: str, exclusions: list[dict]
                         ) -> pd.DataFrame:
    """Each participant's null drift from ``null_change_pct``; rows without one leave."""
    if table["null_change_pct"].isna().all():
        log.warning("contrast %s: the condition fits carry no BP_ND without release "
                    "(bp_nd_null); tested without drift correction", name)
        return table
    lacking = table["null_change_pct"].isna()
    for _, row in table[lacking].iterrows():
        exclusions.append(_exclusion(
            name, row.participant_id, "no null drift: the release model did not fit",
            row.region, row.model))
    table = table[~lacking].copy()
    table["drift_pct"] = table["null_change_pct"]
    table["drift_method"] = "release_model"
    table["drift_scans"] = 1
    return table
