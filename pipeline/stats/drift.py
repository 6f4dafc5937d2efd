"""Null drift of within-scan window designs, measured by simulating the study's own protocol.

With a bolus + infusion, BP_ND from an early and a late window of one scan differ even when
nothing is released (docs/architecture.md). This module simulates null studies with
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
from pipeline.kinetics import estimate_k2prime, fit_conditions
from pipeline.tables import TacTable, provenance, read_tacs, write_table

__all__ = ["DRIFT_COLUMNS", "common_frames", "simulate_null_drift", "write_null_drift"]

log = logging.getLogger(__name__)

DRIFT_COLUMNS = ["contrast", "region", "model", "drift_pct", "drift_sd", "n_sim",
                 "drift_sys_sd", "bp_baseline_sim"]

#: Sensitivity scenarios: assumptions of the simulation varied one at a time (noise level,
#: bolus-to-infusion ratio, receptor k4, partial-volume spill-in of grey and white matter,
#: to which the reference region's drift is sensitive); the SD of a region's drift over the
#: baseline run and these is its systematic (model) uncertainty, ``drift_sys_sd``.
SCENARIOS: tuple[tuple[str, dict[str, float]], ...] = (
    ("noiseless", {"noise": 0.0}),
    ("kbol x0.67", {"kbol": 0.67}),
    ("kbol x1.5", {"kbol": 1.5}),
    ("k4 x0.7", {"k4": 0.7}),
    ("k4 x1.4", {"k4": 1.4}),
    ("grey/white spill-in x0.8", {"spill": 0.8}),
    ("grey/white spill-in x1.2", {"spill": 1.2}),
)


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


def _study_settings(regions: Mapping[str, float], reference: str, kbol: float,
                    k4_factor: float = 1.0):
    from pipeline.simulate.carfentanil import RegionKinetics, StudySettings

    defaults = StudySettings()
    known = defaults.regions
    table = {}
    for name, bp in regions.items():
        base = known.get(name, RegionKinetics(0.0, 1.0, 0.05, 5.0))
        table[name] = replace(base, bp_nd=float(max(bp, 0.05)))
    ref = known.get(reference, RegionKinetics(0.0, 1.0, 0.05, 40.0))
    table[reference] = replace(ref, bp_nd=0.0)
    return replace(defaults, regions=table, reference=reference, kbol=float(kbol),
                   k4=defaults.k4 * float(k4_factor), rejection={}, acceptance={})


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


def _calibrate_binding(target: dict[str, float], design: Design, contrast: str, primary: str,
                       config: Mapping[str, Any], cfg: Mapping[str, Any], reference: str,
                       common: dict, seed: int, passes: int = 3) -> dict[str, float]:
    """True BP_ND per region whose simulated baseline estimates match the study's.

    The estimate is close to affine in the true BP_ND, not proportional (partial-volume
    mixing adds the binding of neighbouring grey and white matter), so one rescaling
    undershoots (e.g. ACC of the demo: 0.84 instead of 0.91). Secant steps on the same
    pilot subjects converge in 2-3 passes.
    """
    from pipeline.simulate.roi import simulate_region_tacs

    def estimates(bp: dict[str, float]) -> pd.Series:
        pilot = simulate_region_tacs(
            subjects=int(cfg.get("calibration_subjects", 20)), seed=seed + 1,
            settings=_study_settings(bp, reference, cfg.get("kbol", 60.0)), **common)
        sim = _simulated_changes(pilot, design, [contrast], [primary], config)
        return sim.groupby("region")["bp_baseline"].median()

    bp = dict(target)
    got = estimates(bp)
    previous: dict[str, tuple[float, float]] = {}
    for _ in range(passes):
        step = {}
        for region, want in target.items():
            now = float(got.get(region, np.nan))
            if not (np.isfinite(now) and now > 0):
                step[region] = bp[region]
                continue
            old = previous.get(region)
            slope = (now - old[1]) / (bp[region] - old[0]) if old and \
                bp[region] != old[0] else now / bp[region]
            if not (np.isfinite(slope) and slope > 0):
                slope = now / bp[region]
            previous[region] = (bp[region], now)
            step[region] = float(max(bp[region] + (want - now) / slope, 0.05))
        bp = step
        got = estimates(bp)
        error = max((abs(float(got.get(r, w)) / w - 1.0) for r, w in target.items() if w > 0),
                    default=0.0)
        log.info("null drift: binding calibration, largest relative error %.3f", error)
        if error < 0.005:
            break
    return bp


def simulate_null_drift(design: Design, config: Mapping[str, Any], *, frames: Frames,
                        reference: str, observed: pd.DataFrame | None = None,
                        pv_mixing: pd.DataFrame | None = None,
                        tac_tables: Sequence[TacTable] | None = None) -> pd.DataFrame:
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
    tac_tables : sequence of TacTable, default=None
        The study's region TACs, for ``noise: auto`` (the simulated noise level is the one
        whose TAC roughness matches theirs, :mod:`pipeline.stats.noise_level`).

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
    auto = cfg.get("noise", "auto") == "auto"
    common = dict(design="windows", null=True, noise=0.5 if auto else float(cfg["noise"]),
                  frames=frames, pv_mixing=_restrict(pv_mixing, target, reference))
    seed = int(cfg.get("seed", 1))
    kbol = float(cfg.get("kbol", 60.0))
    if cfg.get("kinetics", "data") == "data":
        bp_true = _calibrate_binding(target, design, contrasts[0], primary, config, cfg,
                                     reference, common, seed)
    if auto:
        common["noise"] = _estimate_noise(tac_tables, bp_true, reference, kbol, common, seed,
                                          int(cfg.get("calibration_subjects", 20)))
    n_sim = int(cfg.get("n_subjects", 100))
    summary = _drift_summary(simulate_region_tacs(
        subjects=n_sim, seed=seed, settings=_study_settings(bp_true, reference, kbol),
        **common), design, contrasts, models, config)
    summary["drift_sys_sd"] = np.nan
    if cfg.get("sensitivity", True):
        summary["drift_sys_sd"] = _sensitivity(bp_true, reference, kbol, common, seed,
                                               max(20, n_sim // 2), design, contrasts,
                                               models, config).reindex(
            pd.MultiIndex.from_frame(summary[["contrast", "region", "model"]])).to_numpy()
    # floor: the simulator agrees with image-based analyses to ~1 % (config/README.md)
    floor = float(cfg.get("sys_sd_min", 1.0))
    summary["drift_sys_sd"] = np.fmax(summary["drift_sys_sd"], floor)
    summary = summary[DRIFT_COLUMNS].copy()
    summary.attrs["noise"] = float(common["noise"])
    return summary


def _estimate_noise(tables: Sequence[TacTable] | None, bp_true: dict[str, float],
                    reference: str, kbol: float, common: dict, seed: int,
                    subjects: int) -> float:
    """Simulator noise level matching the roughness of the study's TACs (1.0 if unknown)."""
    from pipeline.simulate.roi import simulate_region_tacs
    from pipeline.stats.noise_level import match_noise_level

    def simulate(level: float) -> list[TacTable]:
        study = simulate_region_tacs(subjects=subjects, seed=seed + 2,
                                     settings=_study_settings(bp_true, reference, kbol),
                                     **{**common, "noise": level})
        return [study.tac_table(i) for i in range(len(study.scans))]

    return match_noise_level(tables, simulate, common["frames"])


def _sensitivity(bp_true: dict[str, float], reference: str, kbol: float, common: dict,
                 seed: int, subjects: int, design: Design, contrasts: list[str],
                 models: list[str], config: Mapping[str, Any]) -> pd.Series:
    """SD of the drift over the baseline assumptions and the :data:`SCENARIOS`.

    Every run uses the same seed (the same simulated subjects and noise draws: common
    random numbers), so the spread reflects the changed assumption, not Monte Carlo error.
    """
    from pipeline.simulate.roi import simulate_region_tacs

    keys = ["contrast", "region", "model"]
    runs = []
    for label, change in (("as configured", {}), *SCENARIOS):
        settings = _study_settings(bp_true, reference, kbol * change.get("kbol", 1.0),
                                   change.get("k4", 1.0))
        options = {**common, "noise": change.get("noise", common["noise"])}
        if "spill" in change and isinstance(common.get("pv_mixing"), pd.DataFrame):
            mixing = common["pv_mixing"].copy()
            background = [c for c in ("cortex", "white_matter") if c in mixing.columns]
            mixing[background] *= change["spill"]
            options["pv_mixing"] = mixing
        elif "spill" in change:
            continue
        run = _drift_summary(simulate_region_tacs(subjects=subjects, seed=seed,
                                                  settings=settings, **options),
                             design, contrasts, models, config).set_index(keys)["drift_pct"]
        if runs:
            log.info("null drift sensitivity (%s): mean |change of drift| %.2f %%", label,
                     float((run - runs[0]).abs().mean()))
        runs.append(run)
    return pd.concat(runs, axis=1).std(axis=1, ddof=1)


def _drift_summary(study, design: Design, contrasts: list[str], models: list[str],
                   config: Mapping[str, Any]) -> pd.DataFrame:
    """Mean and SD over simulated subjects of the null % change (each subject's scans averaged)."""
    changes = _simulated_changes(study, design, contrasts, models, config)
    per_subject = changes.groupby(["contrast", "model", "region", "participant_id"],
                                  as_index=False)[["change_pct", "bp_baseline"]].mean()
    return per_subject.groupby(["contrast", "region", "model"], as_index=False).agg(
        drift_pct=("change_pct", "mean"), drift_sd=("change_pct", "std"),
        n_sim=("change_pct", "count"), bp_baseline_sim=("bp_baseline", "mean"))


def write_null_drift(bp_path: str | PathLike, tac_paths: Sequence[str | PathLike],
                     out_path: str | PathLike, *, design: Mapping[str, Any],
                     models: Mapping[str, Mapping[str, Any] | None],
                     k2prime: Mapping[str, Any] | None, settings: Mapping[str, Any],
                     reference: str, pet_path: str | PathLike | None = None,
                     region_config: str | PathLike | None = None) -> Path:
    """Simulate the study's protocol without release and write ``group/null_drift.tsv``.

    ``design`` is the config's ``design`` section (the within-scan contrasts without a
    control and their conditions suffice); ``models`` maps every model whose drift is
    simulated to its options, the primary model first; ``k2prime`` is the ``k2prime``
    section (None when no model uses the shared k2'); ``settings`` is
    ``statistics.null_drift``. ``pet_path`` (any scan) gives the image grid for the
    partial-volume mixing of the regions of ``region_config`` at ``settings["psf_fwhm"]``.
    """
    from pipeline.stats.pvmix import pv_mixing_from_masks
    from pipeline.stats.tables import read_group_table

    models = dict(models)
    config = {"design": dict(design), "models": models, "primary_model": next(iter(models)),
              "k2prime": dict(k2prime or {}), "voxelwise": {"enabled": False},
              "statistics": {"null_drift": dict(settings)}}
    design = load_design(config)
    tables = [read_tacs(p) for p in tac_paths]
    frames = common_frames(tables)
    observed = read_group_table(bp_path)
    cfg = (config.get("statistics") or {}).get("null_drift") or {}
    mixing = None
    if pet_path is not None and cfg.get("psf_fwhm", 6.0):
        import nibabel as nib

        header = nib.load(str(pet_path))
        mixing = pv_mixing_from_masks(region_config, header.shape, header.affine,
                                      float(cfg.get("psf_fwhm", 6.0)))
    table = simulate_null_drift(design, config, frames=frames, reference=reference,
                                observed=observed, pv_mixing=mixing, tac_tables=tables)
    for row in table.itertuples():
        log.info("null drift %s %s %s: %+.2f %% (SD %.2f, %d simulated subjects; "
                 "systematic SD %.2f)", row.contrast, row.model, row.region, row.drift_pct,
                 row.drift_sd, row.n_sim, row.drift_sys_sd)
    write_table(out_path, table, provenance(
        Description="Null drift: % change of BP_ND between the windows of one scan without "
        "any release, simulated with the study's frame schedule, protocol, models, k2' "
        "handling, windows and partial-volume mixing (pipeline.simulate.simulate_region_tacs)",
        settings=dict(cfg), noise_level_used=table.attrs.get("noise"),
        frames_start_s=frames.start_seconds,
        frames_end_s=frames.end_seconds,
        pv_mixing=None if mixing is None else mixing.round(4).to_dict(orient="index"),
        assumptions=["the simulator's plasma input, metabolite, vascular and between-subject "
                     "models describe the study", "drift does not depend on the task",
                     "release-free kinetics are stationary over the scan",
                     "partial-volume mixing follows an isotropic Gaussian PSF of psf_fwhm mm "
                     "over the MNI152 grey/white-matter templates"],
        inputs=[str(bp_path)]))
    return Path(out_path)
