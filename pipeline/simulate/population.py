"""A simulated population: participants and scores, per-subject kinetics, scans and release.

Random numbers come from independent streams spawned from one seed (participants, kinetics,
effects, noise), so changing the noise level never changes the subjects, and the same seed
always gives the same study.

Release model: during a condition, receptor availability (k3, so BP_ND) drops by a
subject- and region-specific fraction ``d = mean_r + effect_sd * z``. For the correlated
region (left amygdala) under rejection, ``z = rho * z_res + sqrt(1 - rho^2) * e`` where
``z_res`` is the participant's standardized resilience, so that activation (BP drop) and
resilience correlate with population coefficient ``rho`` (positive: more resilient, more
activation, as in Hsu et al. 2013). Resilience is an ER89-like integer 14-56
(``round(mean + sd * z_res)``, clipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, format_problem
from pipeline.simulate.carfentanil import StudySettings

__all__ = ["DESIGNS", "Population", "condition_windows", "draw_population", "study_streams"]

#: Scans of each design: (task label, administration protocol).
DESIGNS: dict[str, tuple[tuple[str, str], ...]] = {
    "windows": (("rejection", "bolus-infusion"), ("acceptance", "bolus-infusion")),
    "separate": (("baseline", "bolus"), ("rejection", "bolus"), ("acceptance", "bolus")),
}


@dataclass(frozen=True)
class Population:
    """Participants, kinetics, scans and planted release of one simulated study.

    Attributes
    ----------
    participants : DataFrame
        ``participant_id``, ``age``, ``sex``, ``resilience`` (participants.tsv).
    kinetics : DataFrame
        One row per participant and tissue class: ``participant_id``, ``region``, ``k1``,
        ``k2``, ``k3``, ``k4`` (1/min; K1 mL/cm3/min), ``vb``, ``bp_nd`` (baseline).
    scans : DataFrame
        One row per scan: ``participant_id``, ``task``, ``protocol``, ``kbol``, ``onset``
        (minutes, NaN = no release), ``dose`` (MBq), ``input_shape``.
    retest : DataFrame
        Multiplicative scan-level BP factor: ``participant_id``, ``task``, ``region``,
        ``factor``.
    effects : DataFrame
        Planted release: ``participant_id``, ``condition``, ``region``,
        ``release_fraction`` (fractional drop of k3 and BP_ND).
    design : str
    null : bool
    """

    participants: pd.DataFrame
    kinetics: pd.DataFrame
    scans: pd.DataFrame
    retest: pd.DataFrame
    effects: pd.DataFrame
    design: str
    null: bool


def study_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for participants, kinetics, effects and noise from one seed.

    Parameters
    ----------
    seed : int
        The study seed.
    """
    names = ("participants", "kinetics", "effects", "noise")
    children = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children,
                                                                       strict=True)}


def condition_windows(design: str, task: str, onset: float, scan_end: float
                      ) -> list[tuple[str, float, float]]:
    """The (condition, start, end) windows of one scan, minutes.

    ``windows`` design: ``baseline`` before ``onset``, the task after it; ``separate``: the
    task over the whole scan.

    Parameters
    ----------
    design : {"windows", "separate"}
        The study design.
    task : str
        The scan's task.
    onset : float
        Feedback onset, minutes after injection.
    scan_end : float
        End of the scan, minutes.
    """
    if design == "windows":
        return [("baseline", 0.0, onset), (task, onset, scan_end)]
    return [(task, 0.0, scan_end)]


def _check(design: str, subjects: int, settings: StudySettings) -> None:
    if design not in DESIGNS:
        raise ConfigError(format_problem(
            "simulate design", f"unknown design {design!r}",
            f"Choose one of: {', '.join(DESIGNS)}."))
    if int(subjects) < 1:
        raise ConfigError(format_problem(
            "simulate subjects", f"{subjects} subjects", "Simulate at least 1 subject."))
    classes = settings.all_classes
    if settings.reference not in classes:
        raise ConfigError(format_problem(
            "simulate reference", f"reference region {settings.reference!r} is not simulated",
            f"Choose one of: {', '.join(classes)}."))
    for condition, effects in (("rejection", settings.rejection),
                               ("acceptance", settings.acceptance)):
        unknown = sorted(set(effects) - set(settings.regions))
        if unknown:
            raise ConfigError(format_problem(
                f"simulate {condition} release", f"unknown region(s) {', '.join(unknown)}",
                f"Use regions among: {', '.join(settings.regions)}."))
    if not -1.0 <= settings.correlation <= 1.0:
        raise ConfigError(format_problem(
            "simulate correlation", f"{settings.correlation} is not a correlation",
            "Give a value between -1 and 1."))


def _participants(rng: np.random.Generator, n: int, settings: StudySettings
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    width = max(2, len(str(n)))
    z_res = rng.standard_normal(n)
    resilience = np.clip(np.round(settings.resilience_mean + settings.resilience_sd * z_res),
                         14, 56).astype(int)
    age = np.round(rng.uniform(19.0, 42.0, n)).astype(int)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    ids = [f"sub-{i + 1:0{width}d}" for i in range(n)]
    table = pd.DataFrame({"participant_id": ids, "age": age, "sex": sex,
                          "resilience": resilience})
    return table, z_res


def _kinetics(rng: np.random.Generator, ids: list[str], settings: StudySettings
              ) -> pd.DataFrame:
    classes = settings.all_classes
    names = list(classes)
    n, m = len(ids), len(names)
    lognormal = lambda cv, size: np.exp(cv * rng.standard_normal(size) - 0.5 * cv * cv)  # noqa: E731
    bp_subject = lognormal(settings.bp_cv_subject, (n, 1))
    bp_region = lognormal(settings.bp_cv_region, (n, m))
    k1_subject = lognormal(settings.k1_cv, (n, 1))
    r1_region = lognormal(0.05, (n, m))
    vnd = (settings.k1prime / settings.k2prime) * lognormal(settings.vnd_cv, (n, 1))
    k4 = settings.k4 * lognormal(settings.k4_cv, (n, 1))
    bp0 = np.array([classes[c].bp_nd for c in names])[None, :]
    r1 = np.array([classes[c].r1 for c in names])[None, :]
    vb = np.array([classes[c].vb for c in names])[None, :]
    reference = names.index(settings.reference)
    r1_region[:, reference] = 1.0
    bp = bp0 * bp_subject * bp_region
    k1 = settings.k1prime * k1_subject * r1 * r1_region
    k2 = k1 / vnd
    k4_all = np.broadcast_to(k4, (n, m))
    return pd.DataFrame({
        "participant_id": np.repeat(ids, m),
        "region": np.tile(names, n),
        "k1": k1.ravel(), "k2": k2.ravel(), "k3": (bp * k4_all).ravel(),
        "k4": k4_all.ravel(), "vb": np.broadcast_to(vb, (n, m)).ravel(),
        "bp_nd": bp.ravel(),
    })


def _effects(rng: np.random.Generator, ids: list[str], z_res: np.ndarray,
             settings: StudySettings, null: bool) -> pd.DataFrame:
    rows = []
    rho = settings.correlation
    for condition, means in (("rejection", settings.rejection),
                             ("acceptance", settings.acceptance)):
        for region, mean in means.items():
            z = rng.standard_normal(len(ids))
            sd = settings.effect_sd
            if condition == "rejection" and region == settings.correlated_region:
                z = rho * z_res + np.sqrt(1.0 - rho * rho) * z
                sd = settings.effect_sd if settings.correlated_sd is None \
                    else settings.correlated_sd
            fraction = np.zeros(len(ids)) if null else mean + sd * z
            rows.append(pd.DataFrame({"participant_id": ids, "condition": condition,
                                      "region": region, "release_fraction": fraction}))
    columns = ["participant_id", "condition", "region", "release_fraction"]
    if not rows:  # no release planted anywhere: an empty table, not an error
        return pd.DataFrame({c: pd.Series(dtype=float if c == "release_fraction" else object)
                             for c in columns})
    return pd.concat(rows, ignore_index=True)[columns]


def draw_population(subjects: int, design: str, streams: dict[str, np.random.Generator],
                    settings: StudySettings | None = None, *, null: bool = False
                    ) -> Population:
    """Draw participants, kinetics, scans and planted release for a study.

    Parameters
    ----------
    subjects : int
    design : {"windows", "separate"}
    streams : dict
        From :func:`study_streams`.
    settings : StudySettings, default=None
        None means the defaults.
    null : bool, default=False
        Plant no release at all (scores are still drawn, with no tie to any effect).

    Returns
    -------
    Population

    Raises
    ------
    ConfigError
        For an unknown design, reference or release region, or a bad correlation.
    """
    settings = settings or StudySettings()
    _check(design, subjects, settings)
    participants, z_res = _participants(streams["participants"], int(subjects), settings)
    ids = participants["participant_id"].tolist()
    kinetics = _kinetics(streams["kinetics"], ids, settings)
    effects = _effects(streams["effects"], ids, z_res, settings, null)
    rng = streams["kinetics"]
    rows, retest = [], []
    names = list(settings.all_classes)
    for pid in ids:
        for task, protocol in DESIGNS[design]:
            if design == "windows":
                onset = settings.onset
            else:
                onset = np.nan if task == "baseline" else 0.0
            dose = settings.dose + settings.dose_sd * rng.standard_normal()
            shape = settings.input_shape * np.exp(settings.input_shape_cv
                                                  * rng.standard_normal())
            rows.append({"participant_id": pid, "task": task, "protocol": protocol,
                         "kbol": settings.kbol if protocol == "bolus-infusion" else np.nan,
                         "onset": onset, "dose": dose, "input_shape": shape})
            factor = np.exp(settings.retest_cv * rng.standard_normal(len(names)))
            factor[names.index(settings.reference)] = 1.0
            retest.append(pd.DataFrame({"participant_id": pid, "task": task,
                                        "region": names, "factor": factor}))
    return Population(participants=participants, kinetics=kinetics,
                      scans=pd.DataFrame(rows), retest=pd.concat(retest, ignore_index=True),
                      effects=effects, design=design, null=bool(null))
