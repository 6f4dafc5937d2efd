"""Noiseless frame-averaged TACs of every scan and tissue class of a population, and the truth.

For each scan the arterial input follows its protocol (bolus or bolus + infusion) and dose;
each tissue class (named region or background tissue) is a two-tissue curve whose ``k3``
drops by the planted fraction from the scan's release onset, plus its vascular fraction of
whole blood (parent + labelled metabolites). Everything is computed on a fine grid and
averaged over the frames; values are decay-corrected Bq/mL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.frames import Frames
from pipeline.simulate.carfentanil import StudySettings
from pipeline.simulate.compartments import frame_average, simulation_grid
from pipeline.simulate.inputs import plasma_input
from pipeline.simulate.population import Population, condition_windows
from pipeline.simulate.release import release_profile, solve_two_tissue

__all__ = ["ScanCurves", "simulate_scan_curves"]


@dataclass(frozen=True)
class ScanCurves:
    """Noiseless TACs of all scans.

    Attributes
    ----------
    frames : Frames
    classes : list of str
        Tissue classes (named regions, then background tissue), the last axis of ``tacs``.
    scans : DataFrame
        The population's scan table (row order of ``tacs``).
    tacs : ndarray of shape (n_scans, n_frames, n_classes)
        Frame-averaged, decay-corrected activity, Bq/mL.
    blood : ndarray of shape (n_scans, n_frames)
        Frame-averaged whole-blood activity, Bq/mL.
    truth : DataFrame
        One row per scan, condition window and class: ``participant_id``, ``task``,
        ``condition``, ``window_start``, ``window_end`` (minutes), ``region``, ``bp_nd``
        (mean true k3(t)/k4 over the window), ``bp_nd_scan`` (this scan without release),
        ``release_fraction``, ``k1``, ``k2``, ``k3``, ``k4``, ``vb``.
    """

    frames: Frames
    classes: list[str]
    scans: pd.DataFrame
    tacs: np.ndarray
    blood: np.ndarray
    truth: pd.DataFrame


def _release_fractions(population: Population, classes: list[str]) -> np.ndarray:
    """Planted fractional k3 drop of each scan (row) and class (column)."""
    scans = population.scans
    out = np.zeros((len(scans), len(classes)))
    effects = population.effects
    lookup = {(p, c, r): f for p, c, r, f in effects[
        ["participant_id", "condition", "region", "release_fraction"]].itertuples(index=False)}
    for i, (pid, task) in enumerate(scans[["participant_id", "task"]].itertuples(index=False)):
        for j, region in enumerate(classes):
            out[i, j] = lookup.get((pid, task, region), 0.0)
    return out


def simulate_scan_curves(population: Population, settings: StudySettings,
                         frames: Frames, *, k3_scale: float = 1.0) -> ScanCurves:
    """Noiseless frame-averaged TACs and true parameters of every scan of a population.

    Parameters
    ----------
    population : Population
    settings : StudySettings
    frames : Frames
        Frame schedule, minutes (shared by all scans).
    k3_scale : float, default=1.0
        Multiplies every k3 (BP_ND) for the TACs but not for the truth table; used to take
        the derivative of the TACs with respect to BP_ND (voxel-level variability).

    Returns
    -------
    ScanCurves
    """
    classes = list(settings.all_classes)
    scans = population.scans.reset_index(drop=True)
    n_scans, n_classes = len(scans), len(classes)
    onsets = scans["onset"].dropna().unique()
    t = simulation_grid(float(frames.end[-1]),
                        breaks=np.concatenate([frames.start, frames.end, onsets,
                                               onsets + settings.ramp]),
                        steps=((5.0, settings.dt), (20.0, 0.05)))
    kin = {pid: rows.set_index("region").loc[classes]
           for pid, rows in population.kinetics.groupby("participant_id", sort=False)}
    retest = {key: rows.set_index("region")["factor"].loc[classes].to_numpy()
              for key, rows in population.retest.groupby(["participant_id", "task"],
                                                         sort=False)}
    fractions = _release_fractions(population, classes)

    params = {name: np.empty((n_scans, n_classes)) for name in ("k1", "k2", "k3", "k4", "vb")}
    parent = np.empty((t.size, n_scans))
    blood = np.empty((t.size, n_scans))
    availability = np.empty((t.size - 1, n_scans, n_classes))
    for i, scan in enumerate(scans.itertuples(index=False)):
        rows = kin[scan.participant_id]
        factor = retest[(scan.participant_id, scan.task)]
        for name in params:
            params[name][i] = rows[name].to_numpy()
        params["k3"][i] *= factor
        kbol = None if np.isnan(scan.kbol) else float(scan.kbol)
        curve = plasma_input(t, dose=scan.dose, kbol=kbol, shape=scan.input_shape)
        parent[:, i] = curve.parent
        blood[:, i] = curve.blood
        onset = None if np.isnan(scan.onset) else float(scan.onset)
        profile = release_profile(t, onset, kind=settings.release_kind, ramp=settings.ramp)
        availability[:, i, :] = 1.0 - profile[:, None] * fractions[i][None, :]

    flat = {name: value.reshape(-1) for name, value in params.items()}
    flat["k3"] = flat["k3"] * k3_scale
    free, bound = solve_two_tissue(
        t, np.repeat(parent, n_classes, axis=1), flat["k1"], flat["k2"], flat["k3"],
        flat["k4"], availability=availability.reshape(t.size - 1, -1))
    vb = flat["vb"][None, :]
    tissue = (1.0 - vb) * (free + bound) + vb * np.repeat(blood, n_classes, axis=1)
    tacs = frame_average(t, tissue, frames).reshape(frames.n_frames, n_scans, n_classes)
    truth = _truth_table(population, scans, classes, params, fractions, t, settings,
                         float(frames.end[-1]))
    return ScanCurves(frames=frames, classes=classes, scans=scans,
                      tacs=np.ascontiguousarray(tacs.transpose(1, 0, 2)),
                      blood=frame_average(t, blood, frames).T, truth=truth)


def _truth_table(population: Population, scans: pd.DataFrame, classes: list[str],
                 params: dict[str, np.ndarray], fractions: np.ndarray, t: np.ndarray,
                 settings: StudySettings, scan_end: float) -> pd.DataFrame:
    """True BP_ND per scan, condition window and class (window means of k3(t)/k4)."""
    mid = 0.5 * (t[:-1] + t[1:])
    columns: dict[str, list] = {name: [] for name in (
        "participant_id", "task", "condition", "window_start", "window_end", "region",
        "bp_nd", "bp_nd_scan", "release_fraction", "k1", "k2", "k3", "k4", "vb")}
    n = len(classes)
    for i, scan in enumerate(scans.itertuples(index=False)):
        onset = None if np.isnan(scan.onset) else float(scan.onset)
        profile = release_profile(t, onset, kind=settings.release_kind, ramp=settings.ramp)
        windows = condition_windows(population.design, scan.task,
                                    settings.onset if onset is None else onset, scan_end)
        bp_scan = params["k3"][i] / params["k4"][i]
        for condition, start, end in windows:
            inside = (mid >= start) & (mid < end)
            released = float(profile[inside].mean()) if inside.any() else 0.0
            for name, value in (("participant_id", scan.participant_id), ("task", scan.task),
                                ("condition", condition), ("window_start", start),
                                ("window_end", end)):
                columns[name].append(np.full(n, value, dtype=object if isinstance(value, str)
                                             else float))
            columns["region"].append(np.asarray(classes, dtype=object))
            columns["bp_nd"].append(bp_scan * (1.0 - released * fractions[i]))
            columns["bp_nd_scan"].append(bp_scan)
            columns["release_fraction"].append(fractions[i] * released)
            for name in ("k1", "k2", "k3", "k4", "vb"):
                columns[name].append(params[name][i])
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
