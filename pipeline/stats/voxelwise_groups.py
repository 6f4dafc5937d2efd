"""Voxelwise group comparison of one contrast: two-sample and per-group maps (nilearn).

Input is the contrast's per-participant effect maps (``group/<contrast>_model-<m>_effects``,
% change of BP_ND after drift or control, from
:func:`pipeline.stats.voxelwise.write_voxelwise_contrast`). Because each map is already the
paired condition-minus-baseline change of one participant, the two-sample test of these maps
is the group x condition interaction of the repeated-measures design; the one-sample test
within each group is the condition effect in that group. Both use nilearn's
``SecondLevelModel`` with a design matrix (intercept, group indicator, demeaned
covariates) and ``non_parametric_inference`` for voxel-level FWE (label permutation for the
group difference, sign flipping within a group), plus labelled cluster tables, with the
helpers of the one-group maps (:mod:`pipeline.stats._group_maps`).

Signs: the difference maps (``desc-<a>vs<b>``) are those of activation (release) in group
``a`` minus group ``b`` (positive = more release in ``a``), as the ``difference`` column of
``group/group_differences.tsv``; the per-group maps (``group-<level>``) are signed like the
pooled contrast maps (negative = BP_ND fell = release).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.groups import MIN_GROUP_SIZE, Groups, group_labels
from pipeline.stats._group_maps import label_clusters, save_map, second_level, write_skipped
from pipeline.tables import provenance, read_json, sidecar_path, write_table

__all__ = ["group_map_files", "write_voxelwise_groups"]

log = logging.getLogger(__name__)

_KINDS = {"tmap": ".nii.gz", "fwep": ".nii.gz", "clusters": ".tsv"}


def group_map_files(groups: Groups, base: str) -> dict[str, str]:
    """Output key -> path of every group map of one contrast and model.

    ``base`` is ``group/groups/<contrast>_model-<model>`` (under the output folder). Keys
    are ``diff_<a>vs<b>_<kind>`` and ``group_<level>_<kind>`` with kind ``tmap``, ``fwep``
    (-log10 FWE p) or ``clusters``.

    Parameters
    ----------
    groups : Groups
        ``design.groups`` (levels and comparisons).
    base : str
        Path prefix ``.../group/groups/<contrast>_model-<model>``.
    """
    files = {}
    for a, b in groups.comparisons:
        for kind, ext in _KINDS.items():
            files[f"diff_{a}vs{b}_{kind}"] = f"{base}_desc-{a}vs{b}_{kind}{ext}"
    for level in groups.levels:
        for kind, ext in _KINDS.items():
            files[f"group_{level}_{kind}"] = f"{base}_group-{level}_{kind}{ext}"
    return files


def _covariates(participants: pd.DataFrame, names: tuple[str, ...], pids: list[str]
                ) -> pd.DataFrame:
    """Demeaned covariate columns (text columns as indicators) for ``pids`` (NaN kept)."""
    if not names:
        return pd.DataFrame(index=range(len(pids)))
    table = participants.set_index("participant_id").reindex(pids)[list(names)]
    missing = table.isna().any(axis=1).to_numpy()
    coded = pd.get_dummies(table, drop_first=True, dtype=float)
    coded[missing] = np.nan
    return _centred(coded.reset_index(drop=True))


def _centred(columns: pd.DataFrame) -> pd.DataFrame:
    """Columns minus their mean; columns without variance (e.g. one sex only) dropped."""
    columns = columns - columns.mean()
    return columns.loc[:, columns.std().fillna(0.0) > 0]


def _fit(effects: np.ndarray, keep: np.ndarray, affine: np.ndarray, dm: pd.DataFrame,
         column: str, settings: Mapping[str, Any], seed: int, outputs: Mapping[str, Any],
         prefix: str, sidecar: dict[str, Any], description: str,
         region_config: str | PathLike | None) -> None:
    """One second-level model: t map, FWE map and cluster table under ``prefix`` keys."""
    import nibabel as nib

    n_perm = int(settings.get("n_perm", 200))
    tmap, fwe, _ = second_level(effects, keep, affine, dm, column, n_perm, seed,
                                float(settings.get("smoothing_fwhm", 0)))
    if fwe is None:
        fwe = nib.Nifti1Image(np.zeros(keep.shape, np.float32), affine)
    info = {**sidecar, "design_columns": list(dm.columns), "tested": column, "n_perm": n_perm}
    save_map(tmap, outputs[f"{prefix}_tmap"], {**info, "Description": description})
    save_map(fwe, outputs[f"{prefix}_fwep"], {**info, "Description": "-log10 FWE-corrected p "
                                              "(voxel-level max-t, nilearn "
                                              "non_parametric_inference, two-sided) of the "
                                              "t map: " + description})
    clusters = label_clusters(tmap, height=float(settings.get("height_threshold", 3.0)),
                              cluster_size=int(settings.get("cluster_threshold", 5)),
                              region_config=region_config, fwe_img=fwe)
    write_table(outputs[f"{prefix}_clusters"], clusters,
                {**info, "Description": "Clusters of the t map (" + description + ")"})


def write_voxelwise_groups(effects_path: str | PathLike, participants: pd.DataFrame,
                           outputs: Mapping[str, str | PathLike], *, groups: Groups,
                           settings: Mapping[str, Any],
                           region_config: str | PathLike | None = None, seed: int = 0,
                           source: str | PathLike = "participants.tsv") -> dict[str, Path]:
    """Two-sample (group x condition) and per-group maps of one contrast's effect maps.

    Parameters
    ----------
    effects_path : path-like
        4D effect maps (% change), one volume per participant of the sidecar's
        ``participants`` list.
    participants : DataFrame
        ``participants.tsv`` (group column, covariates).
    outputs : mapping
        Keys of :func:`group_map_files`.
    groups : Groups
    settings : mapping
        ``voxelwise`` config: ``n_perm``, ``height_threshold``, ``cluster_threshold``,
        ``smoothing_fwhm``.
    region_config : path-like, default=None
        For peak labels of the cluster tables.
    seed : int, default=0
        Seed of the permutations.
    source : str or path-like, default="participants.tsv"
        The participants file, named in errors and sidecars.

    Returns
    -------
    dict of str to Path
        The written files. A comparison or group with fewer than 3 participants gets zero
        maps and an empty cluster table whose sidecars say why (logged).
    """
    import nibabel as nib

    img = nib.load(str(effects_path))
    pids = list(read_json(sidecar_path(effects_path)).get("participants") or [])
    data = np.asarray(img.dataobj, float)
    shape, affine = img.shape[:3], img.affine
    labels = group_labels(participants, groups, source=source)
    member = pd.Series(pids, dtype=object).map(labels).to_numpy()
    covariates = _covariates(participants, groups.covariates, pids)
    usable = ~covariates.isna().any(axis=1).to_numpy() if len(covariates.columns) else \
        np.ones(len(pids), bool)
    for pid in np.asarray(pids)[~usable]:
        log.warning("voxelwise groups: %s left out (missing covariate %s)", pid,
                    "/".join(groups.covariates))
    common = provenance(effects=str(effects_path), group_column=groups.column,
                        covariates=list(groups.covariates), seed=seed,
                        inputs=[str(effects_path), str(source)])

    def skipped(prefix: str, reason: str) -> None:
        log.warning("voxelwise groups %s skipped: %s", prefix, reason)
        write_skipped({kind: outputs[f"{prefix}_{kind}"] for kind in _KINDS}, shape, affine,
                      reason)

    def subset(selected: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        volumes = data[..., selected] if len(pids) else np.empty((*shape, 0))
        keep = np.all(np.isfinite(volumes), axis=-1) & np.any(volumes != 0, axis=-1)
        return np.nan_to_num(volumes), keep, [p for p, s in zip(pids, selected, strict=True)
                                              if s]

    for a, b in groups.comparisons:
        prefix = f"diff_{a}vs{b}"
        selected = np.isin(member, [a, b]) & usable
        in_a = member[selected] == a
        if min(in_a.sum(), (~in_a).sum()) < MIN_GROUP_SIZE:
            skipped(prefix, f"{a}: {in_a.sum()}, {b}: {(~in_a).sum()} participants with "
                    f"effect maps; at least {MIN_GROUP_SIZE} per group are needed")
            continue
        volumes, keep, chosen = subset(selected)
        dm = pd.DataFrame({"intercept": 1.0, "group": in_a.astype(float)})
        dm = pd.concat([dm, _centred(covariates[selected].reset_index(drop=True))], axis=1)
        _fit(-volumes, keep, affine, dm, "group", settings, seed, outputs, prefix,
             {**common, "participants": chosen, "groups": [str(g) for g in member[selected]]},
             f"t of activation (% of baseline BP_ND) in {a} minus {b} (group x condition "
             "interaction; positive = more release in " + a + ")", region_config)
    for level in groups.levels:
        prefix = f"group_{level}"
        selected = (member == level) & usable
        if selected.sum() < MIN_GROUP_SIZE:
            skipped(prefix, f"{level}: {selected.sum()} participants with effect maps; at "
                    f"least {MIN_GROUP_SIZE} are needed")
            continue
        volumes, keep, chosen = subset(selected)
        dm = pd.DataFrame({"intercept": np.ones(int(selected.sum()))})
        dm = pd.concat([dm, _centred(covariates[selected].reset_index(drop=True))], axis=1)
        _fit(volumes, keep, affine, dm, "intercept", settings, seed, outputs, prefix,
             {**common, "participants": chosen},
             f"one-sample t of the effect (% change) in group {level} (negative = release)",
             region_config)
    return {k: Path(v) for k, v in outputs.items()}
