"""Voxelwise group statistics: paired % change maps, group t maps, permutation FWE (nilearn),
a voxelwise correlation with a score, and labelled cluster tables.

The per-scan maps come from :mod:`pipeline.parametric`. The analysis mask
(:func:`pipeline.parametric.masks.analysis_mask`) is the target regions of the region
config (``mask: regions``, regions with specific binding) or nilearn's MNI152 brain mask
(``mask: brain``), on the PET grid, restricted to voxels with a finite, positive baseline
BP_ND in every participant. A voxel's effect is its % change, minus the null drift of its
region (from ``group/null_drift.tsv``; voxels outside the named regions get the median drift) for
plain within-scan contrasts, or minus the control contrast's % change for double
differences, as in the region-wise analysis; then each region's voxels are shifted so that
their mean equals the participant's region-level effect (voxel fits are noisier, and noise
biases the two windows differently, see :func:`effect_maps`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.design import Design
from pipeline.errors import InputError, format_problem
from pipeline.parametric.masks import analysis_mask
from pipeline.stats._group_maps import (
    label_clusters,
    region_masks,
    region_members,
    save_map,
    second_level,
    write_skipped,
)
from pipeline.stats.voxel_drift import systematic_sd_map, systematic_sign_flip
from pipeline.tables import provenance, read_json, write_table

__all__ = [
    "averaged_runs",
    "effect_maps",
    "label_clusters",
    "write_voxelwise_contrast",
    "write_voxelwise_correlation",
]

log = logging.getLogger(__name__)


def _drift_map(drift: pd.DataFrame | None, contrast: str, model: str,
               masks: Any | None, shape: tuple[int, ...]) -> np.ndarray:
    """Per-voxel null drift (%): its region's value, the median elsewhere; 0 without drift."""
    out = np.zeros(shape)
    if drift is None:
        return out
    rows = drift[(drift["contrast"] == contrast) & (drift["model"] == model)]
    if rows.empty:
        return out
    out[:] = float(rows["drift_pct"].median())
    values = rows.set_index("region")["drift_pct"]
    if masks is not None:
        best = np.argmax(masks.weights, axis=0)
        inside = np.max(masks.weights, axis=0) > 0.5
        for i, name in enumerate(masks.names):
            if name in values.index:
                out[inside & (best == i)] = float(values[name])
    return out


def _paths(entry: str | PathLike | Sequence[str | PathLike]) -> list[str]:
    """One map path or several (runs/sessions of one condition) as a list of str."""
    if isinstance(entry, str | PathLike):
        return [str(entry)]
    return [str(e) for e in entry]


def averaged_runs(maps: Mapping[tuple[str, str], Any]) -> dict[str, list[str]]:
    """``participant_id/condition`` -> maps averaged, for keys with several runs/sessions.

    Parameters
    ----------
    maps : mapping
        (participant_id, condition) -> one map path or a list of them.
    """
    return {f"{p}/{c}": _paths(v) for (p, c), v in sorted(maps.items())
            if len(_paths(v)) > 1}


def effect_maps(maps: Mapping[tuple[str, str], Any], design: Design, contrast: str,
                *, model: str, drift: pd.DataFrame | None = None,
                region_config: str | PathLike | None = None, mask: np.ndarray | None = None,
                values: pd.DataFrame | None = None,
                ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Per-participant effect maps (% change after drift or control) of one contrast.

    With ``values`` (``group/contrast_values.tsv``), each participant's voxels in a named
    region are shifted so that their mean equals the region-level ``effect_pct`` of that
    participant: windowed voxel fits are noisier than region fits, and noise biases them
    differently in the two windows, so the region-level drift alone does not fit them. The
    voxelwise test then keeps the region-level calibration and adds the spatial pattern.

    Parameters
    ----------
    maps : mapping of (participant_id, condition) to path or list of paths
        BP_ND maps. Several maps of one key (runs or sessions of one condition) are
        averaged voxel by voxel (logged), as the region-level analysis averages BP_ND.
    design : Design
    contrast : str
    model : str
        The maps' model (to pick the drift rows).
    drift : DataFrame, default=None
    region_config : path, default=None
        For the per-region drift map.
    mask : ndarray of bool, default=None
        Analysis mask; voxels must also be finite with baseline BP_ND > 0.05 everywhere.
    values : DataFrame, default=None
        Region-level per-participant values (``contrast``, ``participant_id``, ``region``,
        ``model``, ``effect_pct``).

    Returns
    -------
    effects : ndarray of shape (x, y, z, n)
    participants : list of str
    mask : ndarray of bool, shape (x, y, z)
    affine : ndarray of shape (4, 4)
    """
    import nibabel as nib

    spec = design.contrasts[contrast]
    needed = design.conditions_of(contrast)
    pids = sorted({p for p, _ in maps})
    complete = [p for p in pids if all((p, c) in maps for c in needed)]
    for p in sorted(set(pids) - set(complete)):
        log.warning("voxelwise %s: %s left out (missing condition maps)", contrast, p)
    if len(complete) < 3:
        raise InputError(format_problem(
            None, f"voxelwise contrast {contrast}: only {len(complete)} participant(s) have "
            "every condition map", "At least 3 are needed for a group map."))
    first = nib.load(_paths(maps[(complete[0], needed[0])])[0])
    shape, affine = first.shape[:3], first.affine
    for key, paths in averaged_runs({k: v for k, v in maps.items() if k[0] in complete}
                                    ).items():
        log.warning("voxelwise %s: %s has %d maps (runs/sessions); their voxelwise mean BP_ND "
                    "is used: %s", contrast, key, len(paths), ", ".join(paths))

    def load(p: str, c: str) -> np.ndarray:
        stack = [np.asarray(nib.load(f).dataobj, dtype=float) for f in _paths(maps[(p, c)])]
        return stack[0] if len(stack) == 1 else np.mean(stack, axis=0)

    def change(p: str, base: str, cond: str) -> tuple[np.ndarray, np.ndarray]:
        b, c = load(p, base), load(p, cond)
        ok = np.isfinite(b) & np.isfinite(c) & (b > 0.05)
        with np.errstate(all="ignore"):
            return np.where(ok, 100.0 * (c - b) / b, np.nan), ok

    masks = None
    if values is not None or (drift is not None and spec.control is None
                              and design.within_scan(contrast)):
        masks = region_masks(region_config, shape, affine)
    dmap = _drift_map(drift if spec.control is None and design.within_scan(contrast) else None,
                      contrast, model, masks, shape)
    keep = np.ones(shape, bool) if mask is None else np.asarray(mask, bool).copy()
    region_effect = {}
    if values is not None:
        rows = values[(values["contrast"] == contrast) & (values["model"] == model)]
        region_effect = {(r.participant_id, r.region): float(r.effect_pct)
                         for r in rows.itertuples()}
        if not region_effect:
            log.warning("voxelwise %s: no region-level values for model %s; voxel maps use "
                        "the region drift only", contrast, model)
    effects = np.empty((*shape, len(complete)))
    members = region_members(masks) if region_effect else {}  # once for every participant
    for k, p in enumerate(complete):
        eff, ok = change(p, spec.baseline, spec.condition)
        if spec.control is not None:
            ctl = design.contrasts[spec.control]
            other, ok2 = change(p, ctl.baseline, ctl.condition)
            eff, ok = eff - other, ok & ok2
        eff = eff - dmap
        flat, usable = eff.reshape(-1), (ok & keep).reshape(-1)
        for name, index in members.items():
            sel = index[usable[index]]
            target = region_effect.get((p, name))
            if target is not None and np.isfinite(target) and sel.size:
                flat[sel] += target - flat[sel].mean()
        effects[..., k] = eff
        keep &= ok
    effects[~keep] = np.nan
    return effects, complete, keep, affine


def write_voxelwise_contrast(maps: Mapping[tuple[str, str], Any],
                             outputs: Mapping[str, str | PathLike], *, design: Design,
                             contrast: str, model: str, settings: Mapping[str, Any],
                             drift_path: str | PathLike | None = None,
                             values_path: str | PathLike | None = None,
                             region_config: str | PathLike | None = None,
                             seed: int = 0) -> dict[str, Path]:
    """Group maps of one contrast: per-participant effects (4D), t map, FWE p map, clusters.

    ``values_path`` (``group/contrast_values.tsv``) aligns each region's voxel mean with the
    region-level effect (see :func:`effect_maps`).

    ``outputs`` keys: ``effects``, ``tmap``, ``fwe`` (-log10 FWE-corrected p, two-sided;
    zeros when ``n_perm`` is 0), ``clusters`` (TSV).

    Parameters
    ----------
    maps : mapping
        (participant_id, condition) -> BP_ND map(s) of the contrast's conditions (several runs
        or sessions of one condition are averaged).
    outputs : mapping
        Output key (``effects``, ``tmap``, ``fwe``, ``clusters``) -> file.
    design : Design
        The study design (conditions and contrasts).
    contrast : str
        The contrast.
    model : str
        The maps' model (named in sidecars).
    settings : mapping
        ``voxelwise`` settings: ``mask``, ``n_perm``, ``smoothing_fwhm`` (mm),
        ``height_threshold`` (t), ``cluster_threshold`` (voxels).
    drift_path : str or path-like, default=None
        ``null_drift.tsv``; its region drifts are removed from the voxel effects.
    values_path : str or path-like, default=None
        ``contrast_values.tsv``.
    region_config : str or path-like, default=None
        The region config (analysis mask, cluster labels).
    seed : int, default=0
        Seed of the sign flips.
    """
    import nibabel as nib

    from pipeline.stats.tables import read_group_table

    drift = read_group_table(drift_path) if drift_path else None
    values = read_group_table(values_path) if values_path else None
    first = nib.load(_paths(next(iter(maps.values())))[0])
    mask = analysis_mask(region_config, first.shape, first.affine,
                         settings.get("mask", "regions"))
    try:
        effects, pids, keep, affine = effect_maps(maps, design, contrast, model=model,
                                                  drift=drift, region_config=region_config,
                                                  mask=mask, values=values)
    except InputError as err:
        log.warning("voxelwise %s skipped: %s", contrast, err)
        return write_skipped(outputs, first.shape[:3], first.affine, str(err))
    dm = pd.DataFrame({"intercept": np.ones(len(pids))})
    n_perm = int(settings.get("n_perm", 200))
    smoothing = float(settings.get("smoothing_fwhm", 0))
    sys_sd = systematic_sd_map(drift, design, contrast, model, region_config, keep.shape,
                                affine)
    if sys_sd is None:
        tmap, fwe, _ = second_level(effects, keep, affine, dm, "intercept", n_perm, seed,
                                     smoothing)
        test = "nilearn SecondLevelModel (t) and non_parametric_inference (FWE)"
    else:
        tmap, fwe = systematic_sign_flip(effects, keep, affine, sys_sd, n_perm, seed,
                                          smoothing)
        test = ("sign flipping with each region's systematic drift SD drawn per permutation "
                "(pipeline.stats.signflip)")
    if fwe is None:
        fwe = nib.Nifti1Image(np.zeros(keep.shape, np.float32), affine)
    common = provenance(contrast=contrast, model=model, participants=pids,
                        n_voxels=int(keep.sum()), n_perm=n_perm, seed=seed, test=test,
                        drift_corrected=drift is not None,
                        aligned_to_region_effects=values is not None,
                        runs_averaged=averaged_runs(maps),
                        inputs=sorted(f for v in maps.values() for f in _paths(v)))
    save_map(nib.Nifti1Image(effects.astype(np.float32), affine), outputs["effects"],
             {**common, "Description": "Per-participant effect maps (% change after drift or "
           "control), one volume per participant in 'participants' order"})
    save_map(tmap, outputs["tmap"], {**common, "Description": "One-sample t of the effect "
                                  "(negative = release)"})
    save_map(fwe, outputs["fwe"], {**common, "Description": "-log10 FWE-corrected p (voxel-level "
                                "max-t, sign flipping, two-sided)"})
    clusters = label_clusters(tmap, height=float(settings.get("height_threshold", 3.0)),
                              cluster_size=int(settings.get("cluster_threshold", 5)),
                              region_config=region_config, fwe_img=fwe)
    write_table(outputs["clusters"], clusters, {**common, "Description": "Clusters of the t "
                                                "map with peak region labels"})
    return {k: Path(v) for k, v in outputs.items()}


def write_voxelwise_correlation(effects_path: str | PathLike, participants: pd.DataFrame,
                                outputs: Mapping[str, str | PathLike], *, score: str,
                                settings: Mapping[str, Any],
                                region_config: str | PathLike | None = None,
                                seed: int = 0, ratings_path: str | PathLike | None = None,
                                contrast: str | None = None) -> dict[str, Path]:
    """Voxelwise correlation of activation (-effect) with a score: t, r and FWE p maps.

    A ``score`` that is not a participants.tsv column is a phenotype measure: the
    participants' rating change of ``contrast`` from ``ratings_path``
    (``group/rating_changes.tsv``).

    Parameters
    ----------
    effects_path : str or path-like
        A contrast's per-participant effect maps (``*_effects.nii.gz``, % change, 4D); its
        sidecar lists the participants.
    participants : DataFrame
        ``participants.tsv``.
    outputs : mapping
        Output key (``tmap``, ``rmap``, ``fwe``, ``clusters``) -> file.
    score : str
        A participants.tsv column, or a phenotype measure (with ``ratings_path``).
    settings : mapping
        ``voxelwise`` settings (``n_perm``, ``smoothing_fwhm`` in mm, thresholds).
    region_config : str or path-like, default=None
        The region config (cluster labels).
    seed : int, default=0
        Seed of the permutations.
    ratings_path : str or path-like, default=None
        ``rating_changes.tsv``, for phenotype scores.
    contrast : str, default=None
        The contrast whose rating change is the score.
    """
    import nibabel as nib

    from pipeline.stats.tables import read_group_table
    from pipeline.tables import sidecar_path

    img = nib.load(str(effects_path))
    effects = -np.asarray(img.dataobj, float)  # activation (% of baseline)
    pids = read_json(sidecar_path(effects_path))["participants"]
    scores = participants.set_index("participant_id").reindex(pids)
    if score not in scores.columns and ratings_path is not None:
        ratings = read_group_table(ratings_path)
        rated = ratings[(ratings["measure"] == score) & (ratings["contrast"] == contrast)]
        if len(rated):
            scores[score] = rated.set_index("participant_id")["rating_change"] \
                .reindex(pids).to_numpy(float)
    if score not in scores.columns:
        raise InputError(format_problem("participants.tsv", f"no column {score!r}",
                                        "Fix statistics.correlations or the table."))
    values = pd.to_numeric(scores[score], errors="coerce").to_numpy(float)
    ok = np.isfinite(values)
    effects, values = effects[..., ok], values[ok]
    if values.size < 4 or np.ptp(values) == 0:
        reason = f"only {values.size} participant(s) with a varying {score}; at least 4 needed"
        log.warning("voxelwise correlation skipped: %s", reason)
        return write_skipped(outputs, img.shape[:3], img.affine, reason)
    keep = np.all(np.isfinite(effects), axis=-1)
    dm = pd.DataFrame({"intercept": np.ones(values.size), score: values - values.mean()})
    n_perm = int(settings.get("n_perm", 200))
    tmap, fwe, _ = second_level(effects, keep, img.affine, dm, score, n_perm, seed,
                                float(settings.get("smoothing_fwhm", 0)))
    if fwe is None:
        fwe = nib.Nifti1Image(np.zeros(keep.shape, np.float32), img.affine)
    t = np.asarray(tmap.dataobj, float)
    df = values.size - 2
    r = np.where(keep, t / np.sqrt(t * t + df), 0.0)
    common = provenance(score=score, participants=[p for p, k in zip(pids, ok, strict=True)
                                                   if k], n_perm=n_perm, seed=seed,
                        inputs=[str(effects_path)])
    save_map(tmap, outputs["tmap"], {**common, "Description": f"t of the {score} slope of "
                                     "activation (% of baseline)"})
    save_map(nib.Nifti1Image(r.astype(np.float32), img.affine), outputs["rmap"],
             {**common, "Description": f"Pearson r of activation with {score}"})
    save_map(fwe, outputs["fwe"], {**common, "Description": "-log10 FWE-corrected p, two-sided"})
    clusters = label_clusters(tmap, height=float(settings.get("height_threshold", 3.0)),
                              cluster_size=int(settings.get("cluster_threshold", 5)),
                              region_config=region_config, fwe_img=fwe)
    write_table(outputs["clusters"], clusters, {**common, "Description": "Clusters"})
    return {k: Path(v) for k, v in outputs.items()}
