"""Simulate a whole [11C]carfentanil study as a BIDS-PET dataset with a truth folder.

``simulate_study(out_dir, ...)`` writes ``out_dir/bids`` (the dataset: 4D NIfTI + JSON per
scan, participants.tsv/json with resilience, age and sex, dataset_description.json) and
``out_dir/truth`` outside it (true BP_ND per subject, scan, condition window and region,
planted release, subject kinetics, scan protocols, partial-volume weights of the phantom,
and ``truth.json`` with every setting). Same arguments, same bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.blas import one_blas_thread
from pipeline.errors import ConfigError, format_problem
from pipeline.simulate.bids_writer import (
    pet_sidecar,
    write_dataset_description,
    write_nifti,
    write_participants,
)
from pipeline.simulate.carfentanil import (
    DEMO_ACCEPTANCE_RELEASE,
    DEMO_REJECTION_RELEASE,
    StudySettings,
    default_frames,
)
from pipeline.simulate.group_study import (
    GROUP_COLUMN,
    groups_truth,
    two_group_demo,
    write_ratings,
)
from pipeline.simulate.groups import GroupPlan, RatingPlan, apply_groups
from pipeline.simulate.images import ImageSettings, scan_image, subject_maps
from pipeline.simulate.noise import NoiseModel
from pipeline.simulate.phantom import build_phantom, phantom_mixing
from pipeline.simulate.population import Population, draw_population, study_streams
from pipeline.simulate.scans import ScanCurves, simulate_scan_curves
from pipeline.tables import write_json, write_table

__all__ = ["TASK_TEXT", "demo_settings", "simulate_study", "write_demo_study", "write_truth"]

log = logging.getLogger(__name__)

TASK_TEXT = {
    "rejection": "Social feedback task: the participant is rejected by people they liked "
                 "(simulated; in the windows design minutes 0-45 are a neutral baseline).",
    "acceptance": "Social feedback task: the participant is accepted by people they liked "
                  "(simulated; in the windows design minutes 0-45 are a neutral baseline).",
    "baseline": "Neutral baseline scan without feedback (simulated).",
}
_STEP = 0.05   # relative k3 step for the derivative of TACs with respect to BP_ND


#: Noise level of the demo study (half the default standard deviation).
DEMO_NOISE = 0.5


def demo_settings() -> StudySettings:
    """Settings of the demo study: larger release, a stronger and wider resilience tie."""
    return StudySettings(rejection=dict(DEMO_REJECTION_RELEASE),
                         acceptance=dict(DEMO_ACCEPTANCE_RELEASE), effect_sd=0.03,
                         correlated_sd=0.06, correlation=0.85)


def simulate_study(out_dir: str | PathLike, *, subjects: int = 12, design: str = "windows",
                   seed: int = 2013, null: bool = False, noise: float = 1.0,
                   voxel_size: float = 3.0, settings: StudySettings | None = None,
                   image_settings: ImageSettings | None = None,
                   noise_model: NoiseModel | None = None,
                   regions_config: str | PathLike | None = None,
                   groups: Sequence[GroupPlan] | None = None,
                   ratings: Sequence[RatingPlan] = ()) -> Path:
    """Simulate a study and write it as BIDS-PET (``out_dir/bids``) plus truth (``out_dir/truth``).

    Parameters
    ----------
    out_dir : path-like
        Output folder (created).
    subjects : int, default=12
    design : {"windows", "separate"}, default="windows"
        ``windows``: task-rejection and task-acceptance bolus + infusion scans, release from
        45 min; ``separate``: task-baseline, task-rejection, task-acceptance bolus scans,
        release during the whole condition scan.
    seed : int, default=2013
    null : bool, default=False
        Plant no release (scores are still drawn).
    noise : float, default=1.0
        Noise level: multiplies the noise standard deviation (0 = noiseless images).
    voxel_size : float, default=3.0
        mm (2 or 3 for the standard MNI152 grids).
    settings : StudySettings, default=None
        Kinetics, population and release; default [11C]carfentanil values.
    image_settings : ImageSettings, default=None
        PSF and voxel-level variability.
    noise_model : NoiseModel, default=None
        Noise calibration; ``noise`` overrides its level.
    regions_config : path-like, default=None
        Region config of the phantom (default ``config/regions.yaml``).
    groups : sequence of GroupPlan, default=None
        Patient/control groups (sizes add up to ``subjects``) with their release scales;
        ``participants.tsv`` gains a ``group`` column (:mod:`pipeline.simulate.groups`).
    ratings : sequence of RatingPlan, default=()
        Condition-level ratings written as ``phenotype/<measure>.tsv``, following each
        participant's release.

    Returns
    -------
    Path
        The BIDS dataset folder ``out_dir/bids``.

    Raises
    ------
    ConfigError
        For an unknown design, bad settings or an unsupported voxel size.
    """
    with one_blas_thread():
        return _simulate_study(Path(out_dir), subjects=subjects, design=design, seed=seed,
                               null=null, noise=noise, voxel_size=voxel_size,
                               settings=settings, image_settings=image_settings,
                               noise_model=noise_model, regions_config=regions_config,
                               groups=tuple(groups or ()), ratings=tuple(ratings))


@dataclasses.dataclass(frozen=True)
class PreparedStudy:
    """Everything a study writer needs before drawing images (shared by the MNI-space and
    the scanner-space simulators, so that the same seed gives the same subjects).

    Attributes
    ----------
    population : Population
    phantom : Phantom
        Tissue classes on the MNI grid.
    curves : ScanCurves
        Noiseless class TACs of every scan and the truth table.
    derivative : ndarray of shape (n_scans, n_frames, n_classes)
        d TAC / d ln BP_ND (voxel-level variability).
    frames : Frames
    streams : dict of numpy.random.Generator
        From :func:`study_streams` (``noise`` is used for image noise).
    voxel_stream : numpy.random.Generator
        Voxel-level variability, one draw per subject in participant order.
    model : NoiseModel
    settings : StudySettings
    image_settings : ImageSettings
    """

    population: Population
    phantom: object
    curves: ScanCurves
    derivative: np.ndarray
    frames: object
    streams: dict
    voxel_stream: np.random.Generator
    model: NoiseModel
    settings: StudySettings
    image_settings: ImageSettings


def prepare_study(*, subjects: int, design: str, seed: int, null: bool, noise: float,
                  voxel_size: float, settings: StudySettings | None = None,
                  image_settings: ImageSettings | None = None,
                  noise_model: NoiseModel | None = None,
                  regions_config: str | PathLike | None = None,
                  groups: tuple[GroupPlan, ...] = ()) -> PreparedStudy:
    """Draw the population, build the MNI phantom and the noiseless TACs of a study.

    Arguments as in :func:`simulate_study`.
    """
    settings = settings or StudySettings()
    image_settings = image_settings or ImageSettings()
    base = noise_model or NoiseModel()
    model = dataclasses.replace(base, level=float(noise), half_life=settings.half_life)
    frames = default_frames()
    streams = study_streams(seed)
    voxel_stream = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(5)[4])
    population = draw_population(subjects, design, streams, settings, null=null)
    if groups:
        population = apply_groups(population, groups)
    phantom = build_phantom(voxel_size, classes=list(settings.all_classes),
                            regions_config=regions_config)
    curves = simulate_scan_curves(population, settings, frames)
    stepped = simulate_scan_curves(population, settings, frames, k3_scale=1.0 + _STEP)
    derivative = (stepped.tacs - curves.tacs) / math.log1p(_STEP)
    return PreparedStudy(population=population, phantom=phantom, curves=curves,
                         derivative=derivative, frames=frames, streams=streams,
                         voxel_stream=voxel_stream, model=model, settings=settings,
                         image_settings=image_settings)


def _simulate_study(out_dir: Path, *, subjects: int, design: str, seed: int, null: bool,
                    noise: float, voxel_size: float, settings: StudySettings | None,
                    image_settings: ImageSettings | None, noise_model: NoiseModel | None,
                    regions_config: str | PathLike | None, groups: tuple[GroupPlan, ...] = (),
                    ratings: tuple[RatingPlan, ...] = ()) -> Path:
    prep = prepare_study(subjects=subjects, design=design, seed=seed, null=null, noise=noise,
                         voxel_size=voxel_size, settings=settings,
                         image_settings=image_settings, noise_model=noise_model,
                         regions_config=regions_config, groups=groups)
    settings, image_settings, model = prep.settings, prep.image_settings, prep.model
    population, phantom, curves = prep.population, prep.phantom, prep.curves
    frames, streams, voxel_stream, derivative = (prep.frames, prep.streams, prep.voxel_stream,
                                                 prep.derivative)

    bids = out_dir / "bids"
    scans = curves.scans
    for pid in population.participants["participant_id"]:
        maps = subject_maps(phantom, voxel_stream, image_settings)
        for i in np.flatnonzero(scans["participant_id"].to_numpy() == pid):
            scan = scans.iloc[i]
            image = scan_image(maps, curves.tacs[i], derivative[i], frames, model,
                               streams["noise"], phantom.voxel_size)
            stem = f"{pid}_task-{scan.task}_pet"
            folder = bids / pid / "pet"
            write_nifti(folder / f"{stem}.nii.gz", image, phantom.affine)
            kbol = None if np.isnan(scan.kbol) else float(scan.kbol)
            write_json(folder / f"{stem}.json", pet_sidecar(
                frames, task=scan.task, protocol=scan.protocol, dose_mbq=float(scan.dose),
                kbol=kbol, half_life=settings.half_life, psf_fwhm=image_settings.psf_fwhm,
                extra={"TaskDescription": TASK_TEXT.get(scan.task, scan.task)}))
            log.info("simulated %s", stem)
    write_participants(bids, population.participants, GROUP_COLUMN if groups else None)
    rated = write_ratings(bids, population, groups, ratings, settings, seed)
    effect = "no release (null)" if null else "planted release"
    write_dataset_description(
        bids, name=f"petbp simulated [11C]carfentanil study ({design} design)",
        description=f"Simulated by petbp (pipeline.simulate.simulate_study): {subjects} "
        f"subjects, {design} design, seed {seed}, {effect}, noise level {noise:g}, "
        f"{phantom.voxel_size:g} mm MNI152 grid. The truth is in ../truth (outside the "
        "dataset).")
    write_truth(out_dir / "truth", population, curves, settings, image_settings, model,
                phantom_mixing(phantom, image_settings.psf_fwhm),
                dict(subjects=int(subjects), design=design, seed=int(seed), null=bool(null),
                      noise=float(noise), voxel_size=phantom.voxel_size,
                      regions_config=phantom.source),
                groups_truth(population, groups, ratings, rated))
    return bids


def write_demo_study(out_dir: str | PathLike, *, subjects: int = 12, voxel_size: float = 3.0,
                     design: str = "windows", seed: int = 2013,
                     study: str = "single") -> Path:
    """Write the built-in demo study (``out_dir/bids``, truth in ``out_dir/truth``).

    The demo plants larger release than the defaults (rejection 11-13 %, acceptance 11-12 %
    BP_ND drop, between-subject SD 3 %), ties left-amygdala rejection activation (SD 6 %)
    to resilience with r = 0.85, and halves the noise (level 0.5), so that 12 subjects
    show the findings of the mission's study through partial-volume dilution and noise.

    ``study="two_groups"`` writes the patient-vs-control study instead
    (:func:`pipeline.simulate.group_study.two_group_demo`: ``subjects`` split into HC and
    MDD, controls releasing 5-8 % in six regions and patients nothing, a ``desire`` rating
    in ``phenotype/``), with the same noise level.

    Parameters
    ----------
    out_dir : str or path-like
        Output folder (``bids/`` and ``truth/`` inside).
    subjects : int, default=12
        Number of participants.
    voxel_size : float, default=3.0
        Voxel size of the images, mm.
    design : {"windows", "separate"}, default="windows"
        Within-scan windows or separate scans.
    seed : int, default=2013
        The study seed (same seed, same bytes).
    study : {"single", "two_groups"}, default="single"
        The demo study or the patient-vs-control one.

    Returns
    -------
    Path
        The BIDS dataset folder ``out_dir/bids``.

    Raises
    ------
    ConfigError
        For an unknown ``study`` or too few subjects for two groups.
    """
    if study == "two_groups":
        settings, groups, ratings = two_group_demo(subjects)
        return simulate_study(out_dir, subjects=subjects, design=design, seed=seed,
                              voxel_size=voxel_size, noise=DEMO_NOISE, settings=settings,
                              groups=groups, ratings=ratings)
    if study != "single":
        raise ConfigError(format_problem("demo.study", f"unknown study {study!r}",
                                         "Choose single or two_groups."))
    return simulate_study(out_dir, subjects=subjects, design=design, seed=seed,
                          voxel_size=voxel_size, noise=DEMO_NOISE, settings=demo_settings())


def _effects_table(population: Population, curves: ScanCurves) -> pd.DataFrame:
    """Planted release with the BP_ND it removes (activation = baseline - condition)."""
    truth = curves.truth
    cond = truth[truth["condition"] == truth["task"]]
    rows = population.effects.merge(
        cond[["participant_id", "condition", "region", "bp_nd_scan", "bp_nd"]],
        on=["participant_id", "condition", "region"], how="left")
    rows = rows.rename(columns={"bp_nd_scan": "bp_nd_baseline", "bp_nd": "bp_nd_condition"})
    rows["activation"] = rows["bp_nd_baseline"] - rows["bp_nd_condition"]
    rows["change_pct"] = -100.0 * rows["release_fraction"]
    return rows


def write_truth(folder: Path, population: Population, curves: ScanCurves,
                settings: StudySettings, image_settings: ImageSettings, model: NoiseModel,
                mixing: pd.DataFrame, run: dict, extra: dict | None = None) -> None:
    """Truth tables (TSV) and truth.json: everything needed to score an analysis
    (``extra``: planted groups and ratings, added to ``planted``).

    Parameters
    ----------
    folder : Path
        The ``truth/`` folder.
    population : Population
        The simulated participants, kinetics and scans.
    curves : ScanCurves
        The noiseless curves and true BP_ND.
    settings : StudySettings
        The study's timing and kinetics.
    image_settings : ImageSettings
        The image simulation's settings.
    model : NoiseModel
        The noise model.
    mixing : DataFrame
        Partial-volume weights of each class in each region.
    run : dict
        How the study was made (subjects, design, seed, ...).
    extra : dict, default=None
        Entries added to ``planted`` (groups and ratings).
    """
    write_table(folder / "bp_nd.tsv", curves.truth)
    effects = _effects_table(population, curves)
    write_table(folder / "effects.tsv", effects)
    write_table(folder / "kinetics.tsv", population.kinetics)
    write_table(folder / "scans.tsv", population.scans)
    write_table(folder / "pv_mixing.tsv", mixing.reset_index(names="region"))
    tied = effects[(effects["condition"] == "rejection")
                   & (effects["region"] == settings.correlated_region)].merge(
        population.participants, on="participant_id")
    sample_r = (float(np.corrcoef(tied["activation"], tied["resilience"])[0, 1])
                if len(tied) > 2 and tied["activation"].std() > 0 else None)
    write_json(folder / "truth.json", {
        "Description": "Ground truth of a petbp simulated study (outside the BIDS dataset).",
        "run": run,
        "files": {
            "bp_nd.tsv": "true BP_ND per participant, task (scan), condition window and "
                         "region: bp_nd = window mean of k3(t)/k4, bp_nd_scan = the scan "
                         "without release; k1 mL/cm3/min, k2..k4 1/min, vb fraction; "
                         "window_start/window_end minutes",
            "effects.tsv": "planted release per participant, condition and region: "
                           "release_fraction (drop of k3 and BP_ND), activation = "
                           "bp_nd_baseline - bp_nd_condition, change_pct",
            "kinetics.tsv": "subject kinetics before scan-to-scan (retest) variability",
            "scans.tsv": "per scan: protocol, kbol (min), release onset (min), dose (MBq), "
                         "input_shape (clearance factor)",
            "pv_mixing.tsv": "partial-volume weights of each tissue class in each analysed "
                             "region after PSF blurring (pv_mixing for simulate_region_tacs)",
        },
        "planted": {
            "null": run["null"],
            "rejection_release_mean": {} if run["null"] else settings.rejection,
            "acceptance_release_mean": {} if run["null"] else settings.acceptance,
            "release_sd": settings.effect_sd,
            "correlated_release_sd": settings.correlated_sd or settings.effect_sd,
            "release_onset_min": settings.onset if population.design == "windows" else 0.0,
            "release_kind": settings.release_kind,
            "release_ramp_min": settings.ramp,
            "correlated_region": settings.correlated_region,
            "correlated_score": "resilience",
            "population_correlation": None if run["null"] else settings.correlation,
            "sample_correlation": None if run["null"] else sample_r,
            **dict(extra or {}),
        },
        "kinetics": {
            "regions": {k: dataclasses.asdict(v) for k, v in settings.regions.items()},
            "background": {k: dataclasses.asdict(v) for k, v in settings.background.items()},
            "reference": settings.reference, "k1prime": settings.k1prime,
            "k2prime": settings.k2prime, "k4": settings.k4, "kbol": settings.kbol,
            "input_shape": settings.input_shape,
            "variability_cv": {"bp_subject": settings.bp_cv_subject,
                               "bp_region": settings.bp_cv_region, "k1": settings.k1_cv,
                               "vnd": settings.vnd_cv, "k4": settings.k4_cv,
                               "retest": settings.retest_cv,
                               "input_shape": settings.input_shape_cv},
        },
        "image": dataclasses.asdict(image_settings),
        "noise": model.to_dict(),
    })
