"""Fast region-level study simulator: region TACs of every scan, no images.

The same physics as the image study (:mod:`pipeline.simulate.scans`): arterial input with
metabolites, two-tissue receptor regions with release, vascular fraction, frame averaging
and count-following noise, plus optional partial-volume mixing of neighbouring tissue into
each region. A 12-subject windows study takes well under a second, so null-rate and drift
calibrations can simulate many studies.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, format_problem
from pipeline.frames import Frames
from pipeline.simulate.carfentanil import StudySettings, default_frames
from pipeline.simulate.groups import (
    GroupPlan,
    RatingPlan,
    apply_groups,
    group_stream,
    simulate_ratings,
)
from pipeline.simulate.noise import NoiseModel, frame_sd
from pipeline.simulate.population import draw_population, study_streams
from pipeline.simulate.scans import simulate_scan_curves
from pipeline.tables import TacTable

__all__ = ["RegionStudy", "mixing_matrix", "phantom_pv_mixing", "simulate_region_tacs"]


@functools.lru_cache(maxsize=4)
def phantom_pv_mixing(classes: tuple[str, ...], voxel_size: float = 3.0,
                      psf_fwhm: float = 6.0) -> pd.DataFrame:
    """PV weights of the image phantom (regions x classes), built once per process.

    Parameters
    ----------
    classes : tuple of str
        Simulated tissue classes (``tuple(StudySettings().all_classes)``).
    voxel_size, psf_fwhm : float
        Grid (mm) and scanner resolution (FWHM, mm).
    """
    from pipeline.simulate.phantom import build_phantom, phantom_mixing

    phantom = build_phantom(voxel_size, classes=list(classes))
    return phantom_mixing(phantom, psf_fwhm)


@dataclass(frozen=True)
class RegionStudy:
    """Region TACs of a simulated study, with the truth.

    Attributes
    ----------
    frames : Frames
        Frame schedule, minutes (all scans).
    regions : list of str
        Region names (columns of each TAC, reference included).
    reference : str
    participants : DataFrame
        ``participant_id``, ``age``, ``sex``, ``resilience``.
    scans : DataFrame
        ``participant_id``, ``task``, ``protocol``, ``kbol``, ``onset``, ``dose``, ...
    tacs : ndarray of shape (n_scans, n_frames, n_regions)
        Noisy, decay-corrected activity, Bq/mL.
    noiseless : ndarray of shape (n_scans, n_frames, n_regions)
        The same without noise (after partial-volume mixing).
    truth : DataFrame
        True BP_ND per scan, condition window and region (see :class:`ScanCurves`).
    effects : DataFrame
        Planted release per participant, condition and region.
    settings : dict
        Design, seed, noise and mixing settings (for a truth sidecar).
    ratings : dict of str to DataFrame
        Simulated condition-level ratings per measure (``participant_id`` and one column
        per condition), when rating plans were given.
    """

    frames: Frames
    regions: list[str]
    reference: str
    participants: pd.DataFrame
    scans: pd.DataFrame
    tacs: np.ndarray
    noiseless: np.ndarray
    truth: pd.DataFrame
    effects: pd.DataFrame
    settings: dict = field(default_factory=dict)
    ratings: dict = field(default_factory=dict)

    def tac_table(self, index: int, *, noisy: bool = True) -> TacTable:
        """The TACs of scan ``index`` (row of :attr:`scans`) as a :class:`TacTable`."""
        data = self.tacs if noisy else self.noiseless
        return TacTable(self.frames, pd.DataFrame(data[index], columns=self.regions))


def mixing_matrix(regions: list[str], classes: list[str],
                  pv_mixing: float | pd.DataFrame | None,
                  background: Mapping[str, float] | None = None) -> np.ndarray:
    """Partial-volume weights (n_regions, n_classes) of tissue classes in each region TAC.

    Parameters
    ----------
    regions, classes : list of str
        Named regions (rows) and simulated tissue classes (columns; regions first).
    pv_mixing : float or DataFrame or None
        None: no mixing. A float ``s`` in [0, 1): each region keeps ``1 - s`` of its own
        activity and gains ``s`` of the background mixture. A DataFrame indexed by region with
        a column per class gives the weights directly (e.g. from the image phantom, see
        :func:`phantom_pv_mixing`).
    background : mapping of class to weight, default={"cortex": 0.6, "white_matter": 0.4}
    """
    n_regions = len(regions)
    matrix = np.zeros((n_regions, len(classes)))
    matrix[np.arange(n_regions), [classes.index(r) for r in regions]] = 1.0
    if pv_mixing is None:
        return matrix
    if isinstance(pv_mixing, pd.DataFrame):
        missing = sorted(set(regions) - set(pv_mixing.index))
        if missing:
            raise ConfigError(format_problem(
                "pv_mixing", f"no weights for region(s) {', '.join(missing)}",
                "Give one row per simulated region."))
        return pv_mixing.reindex(index=regions, columns=classes, fill_value=0.0).to_numpy(float)
    share = float(pv_mixing)
    if not 0.0 <= share < 1.0:
        raise ConfigError(format_problem(
            "pv_mixing", f"{share} is not a fraction", "Give a number in [0, 1)."))
    background = background or {"cortex": 0.6, "white_matter": 0.4}
    matrix *= 1.0 - share
    for name, weight in background.items():
        matrix[:, classes.index(name)] += share * weight
    return matrix


def simulate_region_tacs(*, subjects: int = 12, design: str = "windows", seed: int = 2013,
                         null: bool = False, noise: float = 1.0,
                         pv_mixing: float | pd.DataFrame | str | None = None,
                         frames: Frames | None = None,
                         settings: StudySettings | None = None,
                         noise_model: NoiseModel | None = None,
                         voxel_ml: float = 0.027,
                         groups: Sequence[GroupPlan] | None = None,
                         ratings: Sequence[RatingPlan] = ()) -> RegionStudy:
    """Simulate the region TACs of a whole study, with known truth.

    Parameters
    ----------
    subjects : int, default=12
    design : {"windows", "separate"}, default="windows"
        ``windows``: per subject a task-rejection and a task-acceptance bolus + infusion scan,
        release from ``settings.onset`` (45 min); ``separate``: task-baseline,
        task-rejection and task-acceptance bolus scans, release through the whole scan.
    seed : int, default=2013
    null : bool, default=False
        Plant no release anywhere.
    noise : float, default=1.0
        Noise level (multiplies the standard deviation; 0 = noiseless).
    pv_mixing : float or DataFrame or "phantom", default=None
        Partial-volume mixing (:func:`mixing_matrix`); ``"phantom"`` uses the weights of the
        image study's 3 mm phantom with a 6 mm PSF (:func:`phantom_pv_mixing`), i.e. the
        mixing that region TACs of simulated images have.
    frames : Frames, default=None
        Frame schedule; default the 28-frame, 90-min schedule.
    settings : StudySettings, default=None
    noise_model : NoiseModel, default=None
        Count-noise calibration; ``noise`` overrides its ``level``.
    voxel_ml : float, default=0.027
        Voxel volume (mL) used for the noise of region means.
    groups : sequence of GroupPlan, default=None
        Patient/control groups (sizes add up to ``subjects``): participants gain a ``group``
        column and each group's release (and binding) is scaled
        (:mod:`pipeline.simulate.groups`).
    ratings : sequence of RatingPlan, default=()
        Condition-level ratings to simulate (:attr:`RegionStudy.ratings`).

    Returns
    -------
    RegionStudy

    Examples
    --------
    >>> study = simulate_region_tacs(subjects=2, seed=1, noise=0.0)
    >>> study.tacs.shape
    (4, 28, 15)
    """
    settings = settings or StudySettings()
    frames = frames or default_frames()
    pv_label = pv_mixing if isinstance(pv_mixing, str | None) else (
        "matrix" if isinstance(pv_mixing, pd.DataFrame) else float(pv_mixing))
    if isinstance(pv_mixing, str):
        if pv_mixing != "phantom":
            raise ConfigError(format_problem(
                "pv_mixing", f"unknown value {pv_mixing!r}",
                "Give a fraction in [0, 1), a weight table, or 'phantom'."))
        pv_mixing = phantom_pv_mixing(tuple(settings.all_classes))
    base = noise_model or NoiseModel()
    model = NoiseModel(level=float(noise), reference_cv=base.reference_cv,
                       reference_activity=base.reference_activity,
                       half_life=settings.half_life, noise_fwhm=base.noise_fwhm)
    streams = study_streams(seed)
    population = draw_population(subjects, design, streams, settings, null=null)
    if groups:
        population = apply_groups(population, groups)
    rng = group_stream(seed)
    rated = {plan.measure: simulate_ratings(population, tuple(groups or ()), plan, settings,
                                            rng) for plan in ratings}
    curves = simulate_scan_curves(population, settings, frames)
    regions = list(settings.regions)
    weights = mixing_matrix(regions, curves.classes, pv_mixing)
    noiseless = np.einsum("sfc,rc->sfr", curves.tacs, weights)
    volumes = np.array([settings.regions[r].volume for r in regions])
    sd = frame_sd(noiseless.transpose(1, 0, 2), frames, model, volume_ml=volumes,
                  voxel_ml=voxel_ml).transpose(1, 0, 2)
    noisy = noiseless + sd * streams["noise"].standard_normal(noiseless.shape)
    truth = curves.truth[curves.truth["region"].isin(regions)].reset_index(drop=True)
    return RegionStudy(
        frames=frames, regions=regions, reference=settings.reference,
        participants=population.participants, scans=population.scans, tacs=noisy,
        noiseless=noiseless, truth=truth, effects=population.effects,
        settings={"subjects": int(subjects), "design": design, "seed": int(seed),
                  "null": bool(null), "noise": model.to_dict(),
                  "pv_mixing": pv_label,
                  "voxel_ml": voxel_ml}, ratings=rated)
