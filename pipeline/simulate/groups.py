"""Two-group (patient vs control) studies and condition-level ratings for the simulator.

A study's participants are split into groups in order (the first ``GroupPlan.subjects``
participants form the first group, and so on); each group scales the planted release
(:class:`GroupPlan` ``release_scale``: 1 = the settings' release, 0.5 = half of it, 0 =
none), per condition and region if wanted, and may scale its receptor availability
(``binding_scale``). ``participants.tsv`` gains a ``group`` column.

Ratings (:class:`RatingPlan`) are BIDS ``phenotype/<measure>.tsv`` files with one column per
condition (named as in the analysis config, e.g. ``rejbase``, ``rejection``, ``accbase``,
``acceptance``). A participant's rating in a condition is the rating of its baseline (a
subject mean plus scan-to-scan noise) plus a change; for the tied condition the change
follows the participant's own release in the tied region,

    change = change_mean[group][condition] + change_sd (rho z_release + sqrt(1 - rho^2) e),

where ``z_release`` is the participant's standardized planted release (its deviation from
the group's planted mean over the planted SD), so that within a group with release the
population correlation of rating change and true release is ``rho``. Where a group has no
release (scale 0) the change is noise around the group's mean. Ratings are not clipped to
the scale's ends (defaults keep them far from 0 and 100).

Random numbers come from a stream of their own (spawn key 5 of the study seed), so adding
groups or ratings never changes the kinetics, release draws or noise of the other streams.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, format_problem
from pipeline.simulate.carfentanil import StudySettings
from pipeline.simulate.population import Population
from pipeline.tables import write_json, write_table

__all__ = [
    "DESIGN_COLUMNS",
    "GroupPlan",
    "RatingPlan",
    "apply_groups",
    "group_stream",
    "simulate_ratings",
    "write_phenotype",
]

#: Rating-file columns of each simulator design: column -> (task of the scan, window), where
#: window ``baseline`` is the pre-feedback part (windows design) or the baseline scan.
DESIGN_COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "windows": {"rejbase": ("rejection", "baseline"), "rejection": ("rejection", "rejection"),
                "accbase": ("acceptance", "baseline"),
                "acceptance": ("acceptance", "acceptance")},
    "separate": {"baseline": ("baseline", "baseline"), "rejection": ("rejection", "rejection"),
                 "acceptance": ("acceptance", "acceptance")},
}

Scale = float | Mapping[str, float | Mapping[str, float]]


@dataclass(frozen=True)
class GroupPlan:
    """One group of a simulated study.

    Attributes
    ----------
    level : str
        Group label in ``participants.tsv`` (letters and digits), e.g. ``HC`` or ``MDD``.
    subjects : int
        Participants in the group.
    release_scale : float or mapping, default=1.0
        Multiplies the planted release fraction (mean and spread) of this group: one number
        for everything, or ``{condition: number}`` or ``{condition: {region: number}}``
        (conditions ``rejection``/``acceptance``; unnamed ones keep 1).
    binding_scale : float, default=1.0
        Multiplies the group's receptor availability (k3, so baseline BP_ND) in every
        region with specific binding, e.g. 0.9 for 10 % fewer available receptors.
    """

    level: str
    subjects: int
    release_scale: Scale = 1.0
    binding_scale: float = 1.0

    def scale(self, condition: str, region: str) -> float:
        """The release scale of one condition and region."""
        spec = self.release_scale
        if isinstance(spec, Mapping):
            spec = spec.get(condition, 1.0)
        if isinstance(spec, Mapping):
            spec = spec.get(region, 1.0)
        return float(spec)


@dataclass(frozen=True)
class RatingPlan:
    """A simulated condition-level rating (one ``phenotype/<measure>.tsv``).

    Attributes
    ----------
    measure : str
        File name (``phenotype/<measure>.tsv``).
    condition, region : str
        The release (simulator condition ``rejection`` or ``acceptance``, and region) the
        rating change of ``condition`` follows.
    correlation : float
        Population correlation of that rating change with the true release within a group
        that releases.
    change_mean : mapping of str to mapping of str to float
        Group level -> condition -> mean rating change (scale points); missing = 0.
    change_sd : float
        SD of the rating change (scale points).
    baseline_mean, baseline_sd, within_sd : float
        Subject mean of baseline ratings, its between-subject SD, and scan-to-scan noise.
    columns : mapping, default=None
        Column -> (task, window) (see :data:`DESIGN_COLUMNS`, the default for the design).
    description, units : str
        For the JSON sidecar.
    """

    measure: str = "desire"
    condition: str = "acceptance"
    region: str = "thalamus_l"
    correlation: float = 0.7
    change_mean: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    change_sd: float = 8.0
    baseline_mean: float = 50.0
    baseline_sd: float = 10.0
    within_sd: float = 4.0
    columns: Mapping[str, tuple[str, str]] | None = None
    description: str = ("Desire for social contact rated after each part of the scan "
                        "(simulated visual analogue scale)")
    units: str = "mm (0-100 visual analogue scale)"


def group_stream(seed: int) -> np.random.Generator:
    """The generator of groups and ratings: spawn key 5 of the study seed.

    Parameters
    ----------
    seed : int
        The study seed.
    """
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(5,)))


def _check_plans(plans: Sequence[GroupPlan], subjects: int) -> None:
    import re

    levels = [p.level for p in plans]
    bad = [lv for lv in levels if not isinstance(lv, str) or not re.fullmatch(r"[A-Za-z0-9]+",
                                                                             lv)]
    if len(plans) < 2 or bad or len(set(levels)) < len(levels):
        raise ConfigError(format_problem(
            "simulate groups", f"need two or more distinct alphanumeric levels, got {levels}",
            "Give e.g. GroupPlan('HC', 16) and GroupPlan('MDD', 16, release_scale=0)."))
    if sum(int(p.subjects) for p in plans) != int(subjects) or min(p.subjects for p in plans) < 1:
        raise ConfigError(format_problem(
            "simulate groups", f"group sizes {[p.subjects for p in plans]} do not add up to "
            f"{subjects} subjects", "Give every group at least 1 subject; subjects = sum."))


def apply_groups(population: Population, plans: Sequence[GroupPlan]) -> Population:
    """The population with a ``group`` column and each group's release scaled.

    Parameters
    ----------
    population : Population
        From :func:`pipeline.simulate.population.draw_population`.
    plans : sequence of GroupPlan
        Sizes must add up to the population's participants.

    Returns
    -------
    Population
        A new population (the input is not modified).
    """
    participants = population.participants.copy()
    _check_plans(plans, len(participants))
    levels = np.repeat([p.level for p in plans], [int(p.subjects) for p in plans])
    participants.insert(1, "group", levels)
    by_level = {p.level: p for p in plans}
    level_of = dict(zip(participants["participant_id"], levels, strict=True))
    kinetics = population.kinetics.copy()
    binding = kinetics["participant_id"].map(
        {pid: by_level[lv].binding_scale for pid, lv in level_of.items()}).to_numpy(float)
    for column in ("k3", "bp_nd"):
        kinetics[column] = kinetics[column].to_numpy(float) * binding
    effects = population.effects.copy()
    if len(effects):
        scale = [by_level[level_of[pid]].scale(c, r) for pid, c, r in
                 effects[["participant_id", "condition", "region"]].itertuples(index=False)]
        effects["release_fraction"] = effects["release_fraction"].to_numpy(float) \
            * np.asarray(scale, float)
    return dataclasses.replace(population, participants=participants, kinetics=kinetics,
                               effects=effects)


def _release_z(population: Population, plans: Sequence[GroupPlan], plan: RatingPlan,
               settings: StudySettings) -> np.ndarray:
    """Standardized planted release of each participant in the tied condition and region
    (NaN where the group does not release there)."""
    means = {"rejection": settings.rejection, "acceptance": settings.acceptance}[plan.condition]
    if plan.region not in means:
        raise ConfigError(format_problem(
            "simulate ratings", f"no {plan.condition} release is planted in {plan.region!r}",
            f"Tie the rating to one of: {', '.join(means) or 'none'}."))
    sd = settings.effect_sd
    if plan.condition == "rejection" and plan.region == settings.correlated_region \
            and settings.correlated_sd is not None:
        sd = settings.correlated_sd
    rows = population.effects[(population.effects["condition"] == plan.condition)
                              & (population.effects["region"] == plan.region)]
    fraction = rows.set_index("participant_id")["release_fraction"].reindex(
        population.participants["participant_id"]).to_numpy(float)
    by_level = {p.level: p for p in plans}
    if by_level and "group" in population.participants:
        scale = np.array([by_level[g].scale(plan.condition, plan.region)
                          for g in population.participants["group"]])
    else:
        scale = np.ones(fraction.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (fraction / scale - means[plan.region]) / sd
    return np.where((scale > 0) & (sd > 0), z, np.nan)


def simulate_ratings(population: Population, plans: Sequence[GroupPlan], plan: RatingPlan,
                     settings: StudySettings, rng: np.random.Generator) -> pd.DataFrame:
    """Ratings of every participant in every condition column (wide table, 0.1 points).

    Parameters
    ----------
    population : Population
        The simulated participants and scans.
    plans : sequence of GroupPlan
        The planted groups.
    plan : RatingPlan
        The rating measure to simulate.
    settings : StudySettings
        The study's timing (conditions).
    rng : Generator
        Draws the ratings.

    Returns
    -------
    DataFrame
        ``participant_id`` and one column per condition (:data:`DESIGN_COLUMNS` of the
        population's design unless ``plan.columns`` is given).
    """
    if not -1.0 <= plan.correlation <= 1.0:
        raise ConfigError(format_problem("simulate ratings", f"correlation {plan.correlation}",
                                         "Give a value between -1 and 1."))
    columns = dict(plan.columns or DESIGN_COLUMNS[population.design])
    ids = population.participants["participant_id"].to_numpy()
    levels = population.participants["group"].to_numpy() if "group" in \
        population.participants else np.full(ids.size, "")
    n = ids.size
    subject_mean = plan.baseline_mean + plan.baseline_sd * rng.standard_normal(n)
    tasks = sorted({task for task, _ in columns.values()})
    baseline = {task: subject_mean + plan.within_sd * rng.standard_normal(n) for task in tasks}
    z_release = np.full(n, np.nan) if population.null else \
        _release_z(population, plans, plan, settings)
    rho = plan.correlation
    table = pd.DataFrame({"participant_id": ids})
    for column, (task, window) in columns.items():
        if window == "baseline":
            table[column] = baseline[task]
            continue
        noise = rng.standard_normal(n)
        if window == plan.condition:
            noise = np.where(np.isfinite(z_release),
                             rho * np.nan_to_num(z_release) + np.sqrt(1 - rho * rho) * noise,
                             noise)
        mean = np.array([plan.change_mean.get(str(g), {}).get(window, 0.0) for g in levels])
        start = baseline[task] if population.design == "windows" or "baseline" not in \
            baseline else baseline["baseline"]
        table[column] = start + mean + plan.change_sd * noise
    for column in columns:
        table[column] = table[column].round(1)
    return table


def write_phenotype(bids_dir: str | PathLike, plan: RatingPlan, table: pd.DataFrame) -> Path:
    """``phenotype/<measure>.tsv`` and its JSON sidecar (BIDS phenotype files).

    Parameters
    ----------
    bids_dir : str or path-like
        The dataset root.
    plan : RatingPlan
        The measure (its name and description).
    table : DataFrame
        Its ratings (:func:`simulate_ratings`).
    """
    folder = Path(bids_dir) / "phenotype"
    path = write_table(folder / f"{plan.measure}.tsv", table)
    sidecar: dict[str, object] = {
        "MeasurementToolMetadata": {"Description": plan.description},
        "participant_id": {"Description": "Participant label, sub-<label>."},
    }
    for column in table.columns.drop("participant_id"):
        sidecar[column] = {"Description": f"{plan.description}: rating in condition "
                           f"{column}", "Units": plan.units}
    write_json(folder / f"{plan.measure}.json", sidecar)
    return path
