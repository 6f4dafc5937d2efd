"""Null drift of within-scan window designs, measured by simulating the study's own protocol.

With a bolus + infusion, BP_ND from an early and a late window of one scan differ even when
nothing is released (DESIGN.md, "Known hazard"). This module simulates null studies with
the study's frame schedule, infusion protocol (Kbol), region kinetics, models, k2' handling
and windows (the fast region-level simulator of :mod:`pipeline.simulate.roi`) and reports,
per contrast, region and model, the mean and SD of the % change that the analysis produces
without any release (``group/null_drift.tsv``). :mod:`pipeline.stats.regional` tests the
observed changes against these simulated null changes.

Region kinetics (``kinetics: data``, the default) are those of the study itself: each
region's simulated BP_ND is set so that the simulated baseline-window estimates of the
primary model match the study's group median (one calibration pass), with the simulator's
R1, blood volume and volume for regions it knows (R1 = 1, vb = 0.05 otherwise).
``kinetics: simulator`` uses the simulator's [11C]carfentanil defaults instead.

Assumptions (stated in the sidecar and config/README.md): the simulator's plasma input,
metabolite, vascular and between-subject models describe the real study; drift does not
depend on the task; the release-free kinetics are the same in both windows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.design import (
    Design,
    k2prime_settings,
    load_design,
    model_options,
    needs_k2prime,
    region_models,
)
from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames
from pipeline.stats.condition_fits import estimate_k2prime, fit_conditions
from pipeline.tables import TacTable, provenance, read_tacs, write_table

__all__ = ["DRIFT_COLUMNS", "common_frames", "simulate_null_drift", "write_null_drift"]

log = logging.getLogger(__name__)

DRIFT_COLUMNS = ["contrast", "region", "model", "drift_pct", "drift_sd", "n_sim",
                 "bp_baseline_sim"]


def common_frames(tables: Sequence[TacTable]) -> Frames:
    """The most common frame schedule among scans (rounded to 0.01 s)."""
    if not tables:
        raise InputError(format_problem(None, "no TAC tables to take the frame schedule from",
                                        "Check that the design's tasks match the scans."))
    keys = [tuple(np.round(t.frames.start_seconds, 2)) + tuple(np.round(t.frames.end_seconds, 2))
            for t in tables]
    key, count = Counter(keys).most_common(1)[0]
    if count < len(tables):
        log.warning("null drift: %d of %d scans share the most common frame schedule; it is "
                    "used for the simulation", count, len(tables))
    return tables[keys.index(key)].frames


def _study_settings(regions: Mapping[str, float], reference: str, kbol: float):
    from pipeline.simulate.carfentanil import RegionKinetics, StudySettings

    defaults = StudySettings()
    known = defaults.regions
    table = {}
    for name, bp in regions.items():
        base = known.get(name, RegionKinetics(0.0, 1.0, 0.05, 5.0))
        table[name] = replace(base, bp_nd=float(max(bp, 0.05)))
    ref = known.get(reference, RegionKinetics(0.0, 1.0, 0.05, 40.0))
    table[reference] = replace(ref, bp_nd=0.0)
    # Null studies plant nothing; one zero entry keeps the simulator's effect table non-empty.
    none = {next(iter(regions)): 0.0}
    return replace(defaults, regions=table, reference=reference, kbol=float(kbol),
                   rejection=none, acceptance=dict(none))


def _restrict(pv_mixing: pd.DataFrame | None, regions: Mapping[str, float],
              reference: str) -> pd.DataFrame | None:
    """Mixing rows of the simulated regions; classes not simulated are dropped."""
    if pv_mixing is None:
        return None
    names = [*regions, reference]
    missing = [n for n in names if n not in pv_mixing.index]
    if missing:
        log.warning("null drift: no partial-volume weights for %s; simulated unmixed", missing)
        pv_mixing = pv_mixing.copy()
        for n in missing:
            if n not in pv_mixing.columns:
                pv_mixing[n] = 0.0
            pv_mixing.loc[n] = 0.0
            pv_mixing.loc[n, n] = 1.0
    return pv_mixing.loc[names]


def _simulated_changes(study, design: Design, contrasts: list[str], models: list[str],
                       config: Mapping[str, Any]) -> pd.DataFrame:
    """% change per simulated subject, contrast, region and model (null study)."""
    reference = study.reference
    scans = study.scans.reset_index(drop=True)
    k2_cfg = k2prime_settings(config) if any(
        needs_k2prime(model_options(config, m)) for m in models) else None
    k2p: dict[str, float] = {}
    if k2_cfg is not None:
        for pid, rows in scans.groupby("participant_id", sort=False):
            tables = [study.tac_table(i) for i in rows.index]
            try:
                k2p[pid] = estimate_k2prime(tables, k2_cfg, reference=reference)[0]
            except InputError:
                k2p[pid] = np.nan
    windows = {}
    for name in contrasts:
        spec = design.contrasts[name]
        windows[name] = (design.conditions[spec.baseline].window,
                         design.conditions[spec.condition].window)
    conds = sorted({w for pair in windows.values() for w in pair})
    labels = {w: f"w{i}" for i, w in enumerate(conds)}
    rows = []
    for i, scan in scans.iterrows():
        tacs = study.tac_table(i)
        for model in models:
            options = model_options(config, model)
            if needs_k2prime(options) and not np.isfinite(k2p.get(scan.participant_id, np.nan)):
                continue
            fits = fit_conditions(tacs, reference=reference, model=model,
                                  conditions=[(labels[w], w) for w in conds], options=options,
                                  k2prime=k2p.get(scan.participant_id), half_life=20.364)
            bp = fits.pivot(index="region", columns="condition", values="bp_nd")
            for name, (w1, w2) in windows.items():
                base, cond = bp[labels[w1]], bp[labels[w2]]
                change = 100.0 * (cond - base) / base.where(base > 0)
                rows.append(pd.DataFrame({
                    "participant_id": scan.participant_id, "contrast": name,
                    "model": model, "region": bp.index, "bp_baseline": base.to_numpy(),
                    "change_pct": change.to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def simulate_null_drift(design: Design, config: Mapping[str, Any], *, frames: Frames,
                        reference: str, observed: pd.DataFrame | None = None,
                        pv_mixing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean and SD of the % change without release, per within-scan contrast, region, model.

    Parameters
    ----------
    design : Design
    config : mapping
        Validated config: ``models``, ``primary_model``, ``k2prime`` and
        ``statistics.null_drift`` (``n_subjects``, ``seed``, ``noise``, ``kbol``,
        ``kinetics``).
    frames : Frames
        The study's frame schedule, minutes.
    reference : str
        Reference region name.
    observed : DataFrame, default=None
        ``group/bp_nd.tsv`` (needed for ``kinetics: data``): the regions to simulate and
        their baseline BP_ND.
    pv_mixing : DataFrame, default=None
        Partial-volume mixing of the regions (:func:`pipeline.stats.pvmix.pv_mixing_from_masks`);
        None = none.

    Returns
    -------
    DataFrame
        :data:`DRIFT_COLUMNS`; ``n_sim`` is the number of simulated subjects (each the mean
        of its two null scans), ``bp_baseline_sim`` the simulated baseline BP_ND mean.
    """
    from pipeline.simulate.roi import simulate_region_tacs

    cfg = dict((config.get("statistics") or {}).get("null_drift") or {})
    contrasts = [c for c, spec in design.contrasts.items()
                 if spec.control is None and design.within_scan(c)]
    if not contrasts:
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    models = region_models(config)
    primary = models[0]
    voxelwise = config.get("voxelwise") or {}
    if voxelwise.get("enabled", True) and voxelwise.get("model") \
            and voxelwise["model"] not in models:
        models.append(voxelwise["model"])
    baselines = {design.contrasts[c].baseline for c in contrasts}
    if cfg.get("kinetics", "data") == "data":
        if observed is None:
            raise InputError(format_problem(None, "null drift with kinetics: data needs the "
                                            "study's BP_ND table", "Pass group/bp_nd.tsv."))
        rows = observed[(observed["model"] == primary)
                        & observed["condition"].isin(baselines)]
        target = rows.groupby("region")["bp_nd"].median().dropna().to_dict()
        target = {r: v for r, v in target.items() if r != reference}
    else:
        from pipeline.simulate.carfentanil import REGIONS
        target = {r: k.bp_nd for r, k in REGIONS.items() if r != reference}
    bp_true = dict(target)
    common = dict(design="windows", null=True, noise=float(cfg.get("noise", 1.0)),
                  frames=frames, pv_mixing=_restrict(pv_mixing, target, reference))
    seed = int(cfg.get("seed", 1))
    if cfg.get("kinetics", "data") == "data":
        # One calibration pass: make the simulated baseline estimates of the primary model
        # match the study's, so that the simulated regions bind like the real ones.
        pilot = simulate_region_tacs(subjects=int(cfg.get("calibration_subjects", 20)),
                                     seed=seed + 1, settings=_study_settings(
                                         bp_true, reference, cfg.get("kbol", 60.0)), **common)
        sim = _simulated_changes(pilot, design, contrasts[:1], [primary], config)
        got = sim.groupby("region")["bp_baseline"].median()
        for region, want in target.items():
            if np.isfinite(got.get(region, np.nan)) and got[region] > 0:
                bp_true[region] = bp_true[region] * want / got[region]
    study = simulate_region_tacs(subjects=int(cfg.get("n_subjects", 100)), seed=seed,
                                 settings=_study_settings(bp_true, reference,
                                                          cfg.get("kbol", 60.0)), **common)
    changes = _simulated_changes(study, design, contrasts, models, config)
    per_subject = changes.groupby(["contrast", "model", "region", "participant_id"],
                                  as_index=False)[["change_pct", "bp_baseline"]].mean()
    summary = per_subject.groupby(["contrast", "region", "model"], as_index=False).agg(
        drift_pct=("change_pct", "mean"), drift_sd=("change_pct", "std"),
        n_sim=("change_pct", "count"), bp_baseline_sim=("bp_baseline", "mean"))
    return summary[DRIFT_COLUMNS]


def write_null_drift(bp_path: str | PathLike, tac_paths: Sequence[str | PathLike],
                     out_path: str | PathLike, *, config: Mapping[str, Any],
                     reference: str, pet_path: str | PathLike | None = None,
                     region_config: str | PathLike | None = None) -> Path:
    """Simulate the study's protocol without release and write ``group/null_drift.tsv``.

    ``pet_path`` (any scan) gives the image grid for the partial-volume mixing of the
    regions of ``region_config`` at ``statistics.null_drift.psf_fwhm``.
    """
    from pipeline.stats.pvmix import pv_mixing_from_masks
    from pipeline.stats.tables import read_group_table

    design = load_design(config)
    frames = common_frames([read_tacs(p) for p in tac_paths])
    observed = read_group_table(bp_path)
    cfg = (config.get("statistics") or {}).get("null_drift") or {}
    mixing = None
    if pet_path is not None and cfg.get("psf_fwhm", 6.0):
        import nibabel as nib

        header = nib.load(str(pet_path))
        mixing = pv_mixing_from_masks(region_config, header.shape, header.affine,
                                      float(cfg.get("psf_fwhm", 6.0)))
    table = simulate_null_drift(design, config, frames=frames, reference=reference,
                                observed=observed, pv_mixing=mixing)
    for row in table.itertuples():
        log.info("null drift %s %s %s: %+.2f %% (SD %.2f, %d simulated subjects)",
                 row.contrast, row.model, row.region, row.drift_pct, row.drift_sd, row.n_sim)
    write_table(out_path, table, provenance(
        Description="Null drift: % change of BP_ND between the windows of one scan without "
        "any release, simulated with the study's frame schedule, protocol, models, k2' "
        "handling, windows and partial-volume mixing (pipeline.simulate.simulate_region_tacs)",
        settings=dict(cfg), frames_start_s=frames.start_seconds,
        frames_end_s=frames.end_seconds,
        pv_mixing=None if mixing is None else mixing.round(4).to_dict(orient="index"),
        assumptions=["the simulator's plasma input, metabolite, vascular and between-subject "
                     "models describe the study", "drift does not depend on the task",
                     "release-free kinetics are stationary over the scan",
                     "partial-volume mixing follows an isotropic Gaussian PSF of psf_fwhm mm "
                     "over the MNI152 grey/white-matter templates"],
        inputs=[str(bp_path)]))
    return Path(out_path)
