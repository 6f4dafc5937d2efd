"""Region-level studies from petbp's simulator with physics far from its defaults.

Within-scan drift handling has to hold on data whose physics differs from the simulator's
defaults. Each :class:`Variation` changes one part of the physics (blood volume and its
labelled metabolites, the reference region's k2', one- or slow two-tissue targets, the
bolus-to-infusion ratio, the frame schedule, kinetic heterogeneity inside a region, noise,
partial-volume mixing); :func:`simulate_variation` returns the study's scans as
:class:`~pipeline.stats.region_study.ScanTacs` with its release truth. Used by the
validation tests and ``benchmarks/bench_drift.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline.frames import Frames
from pipeline.simulate.carfentanil import StudySettings
from pipeline.simulate.roi import RegionStudy, simulate_region_tacs
from pipeline.tables import TacTable

__all__ = ["VARIATIONS", "Variation", "independent_like_frames", "simulate_variation"]


def independent_like_frames() -> Frames:
    """30 frames over 90 min from 15 s to 5 min (4x15 s, 4x30 s, 3x1, 2x2, 5x4, 12x5 min)."""
    durations = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [240] * 5 + [300] * 12
    ends = np.cumsum(durations, dtype=float)
    return Frames.from_seconds(ends - np.asarray(durations, float), ends)


def _with_vb(settings: StudySettings, vb: float) -> StudySettings:
    regions = {k: replace(v, vb=vb) for k, v in settings.regions.items()}
    background = {k: replace(v, vb=vb) for k, v in settings.background.items()}
    return replace(settings, regions=regions, background=background)


def _scaled(settings: StudySettings, bp: float, r1: float) -> StudySettings:
    regions = {k: (replace(v, bp_nd=v.bp_nd * bp, r1=v.r1 * r1) if v.bp_nd > 0 else v)
               for k, v in settings.regions.items()}
    return replace(settings, regions=regions)


@dataclass(frozen=True)
class Variation:
    """One change of physics.

    Attributes
    ----------
    name : str
    settings : callable
        StudySettings -> StudySettings.
    noise : float
        Noise level relative to the study's base level (``simulate_variation``'s
        ``noise``; the level of :func:`pipeline.simulate.simulate_region_tacs` is their
        product).
    pv_mixing : str or float or None
        Partial-volume mixing (``"phantom"``: the image phantom's, 6 mm PSF).
    frames : callable or None
        Returns the frame schedule; None = the default 28 frames.
    heterogeneity : tuple of (bp factor, r1 factor) or None
        Each region an equal mix of two kinetic populations with BP_ND and R1 scaled by
        these factors and by their reciprocals.
    """

    name: str
    settings: Callable[[StudySettings], StudySettings] = field(default=lambda s: s)
    noise: float = 1.0
    pv_mixing: Any = "phantom"
    frames: Callable[[], Frames] | None = None
    heterogeneity: tuple[float, float] | None = None


#: The panel of the validation: each entry differs from the defaults in one respect.
VARIATIONS: tuple[Variation, ...] = (
    Variation("defaults"),
    Variation("no partial-volume mixing", pv_mixing=None),
    Variation("blood volume 0 %", settings=lambda s: _with_vb(s, 0.0)),
    Variation("blood volume 8 %", settings=lambda s: _with_vb(s, 0.08)),
    Variation("reference k2' 0.10/min", settings=lambda s: replace(s, k2prime=0.10)),
    Variation("reference k2' 0.35/min", settings=lambda s: replace(s, k2prime=0.35)),
    Variation("one-tissue targets (k4 2/min)", settings=lambda s: replace(s, k4=2.0)),
    Variation("slow two-tissue targets (k4 0.1/min)", settings=lambda s: replace(s, k4=0.1)),
    Variation("Kbol 30 min", settings=lambda s: replace(s, kbol=30.0)),
    Variation("Kbol 120 min", settings=lambda s: replace(s, kbol=120.0)),
    Variation("30 frames, 15 s to 5 min", frames=independent_like_frames),
    Variation("kinetic heterogeneity (BP x0.7/x1.4, R1 x0.8/x1.25)",
              heterogeneity=(1.4, 1.25)),
    Variation("noise x0.5", noise=0.5),
    Variation("noise x2", noise=2.0),
)


def _study(variation: Variation, settings: StudySettings, **kwargs) -> RegionStudy:
    return simulate_region_tacs(design="windows", pv_mixing=variation.pv_mixing,
                                settings=settings,
                                frames=None if variation.frames is None else variation.frames(),
                                **kwargs)


def simulate_variation(variation: Variation, *, subjects: int, seed: int, null: bool,
                       base: StudySettings | None = None, noise: float = 1.0):
    """Scans of one simulated study under ``variation``, and its noiseless null twin.

    Parameters
    ----------
    variation : Variation
    subjects, seed : int
    null : bool
        Plant no release.
    base : StudySettings, default=None
        The settings the variation starts from (default: the simulator's).
    noise : float, default=1.0
        Base noise level, multiplied by the variation's.

    Returns
    -------
    scans : list of ScanTacs
        Noisy TACs of every scan.
    truth : DataFrame
        Per participant, contrast (task) and region: ``planted_pct`` (% fall of k3 set) and
        the noiseless scans of this study and of its null twin (same subjects and noise
        draws, no release), as ``noiseless`` / ``noiseless_null`` TacTables per scan index
        in ``attrs``.
    """
    from pipeline.stats.region_study import ScanTacs

    settings = variation.settings(base or StudySettings())
    common = dict(subjects=subjects, seed=seed, noise=noise * variation.noise)
    if variation.heterogeneity is None:
        study = _study(variation, settings, null=null, **common)
        twin = _study(variation, settings, null=True, **common)
        noisy = study.tacs
        clean, clean_null = study.noiseless, twin.noiseless
    else:
        bp, r1 = variation.heterogeneity
        parts = [_study(variation, _scaled(settings, b, r), null=n, **common)
                 for b, r in ((bp, r1), (1.0 / bp, 1.0 / r1)) for n in (null, True)]
        clean = 0.5 * (parts[0].noiseless + parts[2].noiseless)
        clean_null = 0.5 * (parts[1].noiseless + parts[3].noiseless)
        noisy = clean + (parts[0].tacs - parts[0].noiseless)
        study = parts[0]
    frames = study.frames
    scans, tables, tables_null = [], [], []
    for i, row in study.scans.reset_index(drop=True).iterrows():
        def table(data: np.ndarray, i: int = i) -> TacTable:
            return TacTable(frames, pd.DataFrame(data[i], columns=study.regions))
        scans.append(ScanTacs(str(row["participant_id"]), str(row["task"]), table(noisy)))
        tables.append(table(clean))
        tables_null.append(table(clean_null))
    truth = study.effects.copy()
    truth.attrs.update(noiseless=tables, noiseless_null=tables_null,
                       reference=study.reference)
    return scans, truth
