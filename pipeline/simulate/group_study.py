"""The image study's two-group parts: ratings files, truth entries, the two-group demo, and
an atlas of the phantom's own labels.

:func:`two_group_demo` gives the settings of the built-in patient-vs-control study
(``demo.study: two_groups``): controls release 5-8 % of BP_ND (between-subject SD 3 %,
4 % for left-amygdala rejection) in six regions, nine (contrast, region) pairs, and
patients release nothing; a ``desire`` rating (social contact) rises after acceptance in controls
only, with the rise tied (population r = 0.7) to each control's release in the left
thalamus. :func:`write_phantom_atlas` writes the phantom's regions as a label atlas and a
region config using it, so that an analysis can be scored with the simulator's own labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, format_problem
from pipeline.simulate.carfentanil import StudySettings
from pipeline.simulate.groups import (
    DESIGN_COLUMNS,
    GroupPlan,
    RatingPlan,
    group_stream,
    simulate_ratings,
    write_phenotype,
)
from pipeline.simulate.population import Population

__all__ = ["GROUP_COLUMN", "TWO_GROUP_ACCEPTANCE", "TWO_GROUP_REJECTION", "groups_truth",
           "two_group_demo", "write_phantom_atlas", "write_ratings"]

#: ``participants.json`` entry of the simulated ``group`` column.
GROUP_COLUMN = {"group": {"Description": "Diagnostic group (simulated).",
                          "Levels": {"HC": "healthy control",
                                     "MDD": "major depressive disorder"}}}

#: Controls' rejection release of the two-group demo (fraction of k3 and BP_ND).
TWO_GROUP_REJECTION = {"thalamus_l": 0.07, "thalamus_r": 0.06, "putamen_l": 0.05,
                       "caudate_l": 0.06, "amygdala_l": 0.08}
#: Controls' acceptance release of the two-group demo.
TWO_GROUP_ACCEPTANCE = {"thalamus_l": 0.08, "putamen_r": 0.07, "caudate_l": 0.05,
                        "putamen_l": 0.06}


def write_ratings(bids_dir: str | PathLike, population: Population,
                  groups: Sequence[GroupPlan], ratings: Sequence[RatingPlan],
                  settings: StudySettings, seed: int) -> dict[str, pd.DataFrame]:
    """Simulate and write every rating plan's ``phenotype/<measure>.tsv``; measure -> table.

    Parameters
    ----------
    bids_dir : str or path-like
        The dataset root (``phenotype/`` is written there).
    population : Population
        The simulated participants and scans.
    groups : sequence of GroupPlan
        The planted groups.
    ratings : sequence of RatingPlan
        The rating measures to simulate.
    settings : StudySettings
        The study's timing and kinetics.
    seed : int
        The study seed (ratings use their own stream of it).
    """
    rng = group_stream(seed)
    written = {}
    for plan in ratings:
        table = simulate_ratings(population, tuple(groups), plan, settings, rng)
        write_phenotype(bids_dir, plan, table)
        written[plan.measure] = table
    return written


def _sample_r(population: Population, plan: RatingPlan, table: pd.DataFrame,
              level: str | None) -> float | None:
    """Sample correlation of the tied rating change with the true release fraction."""
    spec = plan.columns or DESIGN_COLUMNS[population.design]
    tied = next((c for c, (_, w) in spec.items() if w == plan.condition), None)
    if tied is None:
        return None
    base = next((c for c, (t, w) in spec.items() if w == "baseline"
                 and (t == spec[tied][0] or population.design != "windows")), None)
    if base is None:
        return None
    rows = population.effects[(population.effects["condition"] == plan.condition)
                              & (population.effects["region"] == plan.region)]
    joined = table.assign(change=table[tied] - table[base]).merge(
        rows[["participant_id", "release_fraction"]], on="participant_id")
    if level is not None and "group" in population.participants:
        ids = population.participants.loc[population.participants["group"] == level,
                                          "participant_id"]
        joined = joined[joined["participant_id"].isin(ids)]
    if len(joined) < 3 or joined["release_fraction"].std() == 0:
        return None
    return float(np.corrcoef(joined["change"], joined["release_fraction"])[0, 1])


def groups_truth(population: Population, groups: Sequence[GroupPlan],
                 ratings: Sequence[RatingPlan], rated: dict[str, pd.DataFrame]
                 ) -> dict[str, Any]:
    """Entries of ``truth.json`` ``planted`` for groups and ratings (empty without them).

    Parameters
    ----------
    population : Population
        The simulated participants.
    groups : sequence of GroupPlan
        The planted groups.
    ratings : sequence of RatingPlan
        The rating measures.
    rated : dict
        Measure -> the simulated ratings table (:func:`write_ratings`).
    """
    out: dict[str, Any] = {}
    if groups:
        out["groups"] = [dataclasses.asdict(g) for g in groups]
    levels = [g.level for g in groups] or [None]
    if ratings:
        out["ratings"] = [{**{k: v for k, v in dataclasses.asdict(r).items()},
                           "sample_correlation": {str(lv or "all"): _sample_r(
                               population, r, rated[r.measure], lv) for lv in levels}}
                          for r in ratings]
    return out


def two_group_demo(subjects: int = 32) -> tuple[StudySettings, list[GroupPlan],
                                               list[RatingPlan]]:
    """Settings, groups and rating of the built-in two-group study.

    Parameters
    ----------
    subjects : int, default=32
        All participants, split evenly (controls ``HC`` first; the extra one of an odd
        number goes to HC). At least 6 (3 per group).
    """
    if int(subjects) < 6:
        raise ConfigError(format_problem(
            "demo.subjects", f"{subjects} subjects for the two-group demo",
            "Simulate at least 6 (3 per group)."))
    settings = dataclasses.replace(
        StudySettings(), rejection=dict(TWO_GROUP_REJECTION),
        acceptance=dict(TWO_GROUP_ACCEPTANCE), effect_sd=0.03, correlated_sd=0.04,
        correlation=0.0)
    n_b = int(subjects) // 2
    groups = [GroupPlan("HC", int(subjects) - n_b), GroupPlan("MDD", n_b, release_scale=0.0)]
    rating = RatingPlan(measure="desire", condition="acceptance", region="thalamus_l",
                        correlation=0.7, change_mean={"HC": {"acceptance": 8.0}},
                        change_sd=8.0)
    return settings, groups, [rating]


def write_phantom_atlas(folder: str | PathLike, voxel_size: float = 3.0, *,
                        regions_config: str | PathLike | None = None,
                        settings: StudySettings | None = None,
                        psf_fwhm: float = 6.0) -> Path:
    """The phantom's regions as a label atlas plus a region config that uses it.

    Each voxel is labelled with the named region that holds most of its tissue when that
    is at least half the voxel (``phantom_labels.nii.gz`` + ``phantom_labels.tsv``).
    ``regions_phantom.yaml`` lists every region (the reference included) as a label of this
    atlas; ``pv_mixing.tsv`` holds the partial-volume weights of each tissue class in each
    label region after a Gaussian PSF of ``psf_fwhm`` mm (the image simulator's default),
    for :func:`pipeline.simulate.simulate_region_tacs`.

    Parameters
    ----------
    folder : str or path-like
        Where the atlas, its table, the region config and ``pv_mixing.tsv`` go.
    voxel_size : float, default=3.0
        Voxel size of the phantom grid, mm.
    regions_config : str or path-like, default=None
        The region config whose regions are labelled; None uses the shipped default.
    settings : StudySettings, default=None
        The study's settings; None uses the defaults.
    psf_fwhm : float, default=6.0
        PSF of the partial-volume weights, mm.

    Returns
    -------
    Path
        The region config ``<folder>/regions_phantom.yaml``.
    """
    import nibabel as nib
    import yaml

    from pipeline.simulate.phantom import build_phantom, phantom_mixing
    from pipeline.tables import atomic_path, write_table

    settings = settings or StudySettings()
    phantom = build_phantom(voxel_size, classes=list(settings.all_classes),
                            regions_config=regions_config)
    names = [n for n in phantom.region_names if n in phantom.classes]
    if not names:
        raise ConfigError(format_problem(regions_config, "no region of the config is a "
                                         "simulated tissue class", "Use the default regions."))
    fractions = phantom.fractions[[phantom.classes.index(n) for n in names]]
    best = np.argmax(fractions, axis=0)
    label = np.where(np.max(fractions, axis=0) >= 0.5, best + 1, 0).astype(np.int16)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "phantom_labels.nii.gz") as tmp:
        nib.save(nib.Nifti1Image(label, phantom.affine), str(tmp))
    (folder / "phantom_labels.tsv").write_text(
        "index\tname\n" + "".join(f"{i + 1}\t{n}\n" for i, n in enumerate(names)))
    config = {
        "name": "phantom",
        "description": "The simulator's own region labels (voxels with >= 50 % of the "
                       "region's tissue), for scoring analyses of simulated studies.",
        "reference": settings.reference,
        "atlases": {"phantom": {"image": "phantom_labels.nii.gz",
                                "labels": "phantom_labels.tsv", "kind": "labels"}},
        "atlas": "phantom",
        "regions": {n: {"labels": [n]} for n in names},
    }
    target = folder / "regions_phantom.yaml"
    with atomic_path(target) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    labelled = dataclasses.replace(
        phantom, region_names=names,
        region_weights=np.stack([label == i + 1 for i in range(len(names))]).astype(np.float32))
    mixing = phantom_mixing(labelled, psf_fwhm)
    write_table(folder / "pv_mixing.tsv", mixing.reset_index(names="region"))
    return target
