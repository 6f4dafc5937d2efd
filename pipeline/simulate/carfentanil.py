"""Default [11C]carfentanil kinetics, frame schedule and planted effects of the demo study.

Values are chosen to look like published [11C]carfentanil data (BP_ND relative to occipital
cortex from Michigan and Turku studies; see the region table) and are assumptions, not
measurements: every one can be overridden through :class:`StudySettings`.

Kinetics: receptor regions follow a two-tissue model with ``K1 = R1 K1'``, ``k2 = R1 k2'``
(equal ``K1/k2`` = nondisplaceable volume across regions), ``k4 = 0.25/min`` and
``k3 = BP_ND k4``; the occipital reference is one-tissue (``K1' = 0.30 mL/cm3/min``,
``k2' = 0.12/min``). Grey matter has a 5 % and white matter a 3 % blood volume.

Why ``k4 = 0.25/min``: specific binding of [11C]carfentanil equilibrates quickly enough that
SRTM describes its TACs well (Endres et al. 2003, Nucl Med Biol 30:177); with a slower
``k4 = 0.1/min`` a 0-45 min SRTM window overestimates BP_ND by 10-20 %, far beyond what is
seen in practice. With 0.25/min, windowed SRTM on noiseless null data drifts by about -2
to -5 % between the 0-45 and 45-90 min windows, the size reported for realistic
[11C]carfentanil simulations (docs/architecture.md, "Within-scan drift"). The value is an
assumption; set
``StudySettings(k4=...)`` to explore others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.frames import Frames

__all__ = [
    "ACCEPTANCE_RELEASE",
    "BACKGROUND_CLASSES",
    "DEMO_ACCEPTANCE_RELEASE",
    "DEMO_REJECTION_RELEASE",
    "FRAME_DURATIONS_S",
    "REFERENCE_REGION",
    "REGIONS",
    "REJECTION_RELEASE",
    "RegionKinetics",
    "StudySettings",
    "default_frames",
]

#: 6x0.5, 5x1, 5x2, 4x3, 4x5, 4x10 min: 28 frames over 90 min (seconds).
FRAME_DURATIONS_S: tuple[int, ...] = (30,) * 6 + (60,) * 5 + (120,) * 5 + (180,) * 4 \
    + (300,) * 4 + (600,) * 4


@dataclass(frozen=True)
class RegionKinetics:
    """Population-mean kinetics of one region.

    Attributes
    ----------
    bp_nd : float
        k3 / k4 (0 = no specific binding, one-tissue).
    r1 : float
        K1 / K1' (relative delivery).
    vb : float
        Blood volume fraction.
    volume : float
        Typical volume of the region (both hemispheres counted separately), mL; sets the
        noise of region-level TACs in :func:`pipeline.simulate.simulate_region_tacs`.
    """

    bp_nd: float
    r1: float = 1.0
    vb: float = 0.05
    volume: float = 5.0


#: Regions of config/regions.yaml with population-mean kinetics (BP_ND vs occipital cortex).
REGIONS: dict[str, RegionKinetics] = {
    "amygdala_l": RegionKinetics(1.8, 0.85, 0.05, 1.7),
    "amygdala_r": RegionKinetics(1.8, 0.85, 0.05, 1.7),
    "nacc_l": RegionKinetics(2.7, 1.0, 0.05, 0.7),
    "nacc_r": RegionKinetics(2.7, 1.0, 0.05, 0.7),
    "thalamus_l": RegionKinetics(2.7, 1.15, 0.05, 7.5),
    "thalamus_r": RegionKinetics(2.7, 1.15, 0.05, 7.5),
    "caudate_l": RegionKinetics(1.7, 1.0, 0.05, 3.8),
    "caudate_r": RegionKinetics(1.7, 1.0, 0.05, 3.8),
    "putamen_l": RegionKinetics(2.0, 1.1, 0.05, 5.0),
    "putamen_r": RegionKinetics(2.0, 1.1, 0.05, 5.0),
    "acc": RegionKinetics(1.7, 1.1, 0.05, 9.0),
    "insula_l": RegionKinetics(1.8, 1.05, 0.05, 7.0),
    "insula_r": RegionKinetics(1.8, 1.05, 0.05, 7.0),
    "pag": RegionKinetics(1.2, 1.0, 0.05, 0.6),
    "occipital": RegionKinetics(0.0, 1.0, 0.05, 40.0),
}

#: The reference region (one-tissue, no specific binding).
REFERENCE_REGION = "occipital"

#: Tissue outside the named regions: cortical grey matter and white matter.
BACKGROUND_CLASSES: dict[str, RegionKinetics] = {
    "cortex": RegionKinetics(0.8, 1.0, 0.05, 400.0),
    "white_matter": RegionKinetics(0.25, 0.55, 0.03, 450.0),
}

#: Fractional drop of receptor availability (k3, hence BP_ND) during social rejection
#: (Hsu et al. 2013: ventral striatum, amygdala, midline thalamus, periaqueductal grey).
REJECTION_RELEASE: dict[str, float] = {
    "amygdala_l": 0.08, "amygdala_r": 0.07, "nacc_l": 0.07, "nacc_r": 0.07,
    "thalamus_l": 0.06, "thalamus_r": 0.06, "pag": 0.08,
}

#: Fractional drop during social acceptance (a different set: ventral striatum, right
#: amygdala, insula and anterior cingulate).
ACCEPTANCE_RELEASE: dict[str, float] = {
    "nacc_l": 0.06, "nacc_r": 0.06, "amygdala_r": 0.06, "insula_l": 0.06,
    "insula_r": 0.06, "acc": 0.07,
}

#: The demo study's larger effects, so that 12 subjects show them.
DEMO_REJECTION_RELEASE: dict[str, float] = {k: v + 0.05 for k, v in REJECTION_RELEASE.items()}
DEMO_ACCEPTANCE_RELEASE: dict[str, float] = {k: v + 0.05 for k, v in ACCEPTANCE_RELEASE.items()}


@dataclass(frozen=True)
class StudySettings:
    """Everything about a simulated study except its size, design and seed.

    Rate constants 1/min, times minutes, radioactivity MBq; coefficients of variation (CV)
    are between-subject standard deviations of log-normal factors.

    Attributes
    ----------
    regions, background : dict of str to RegionKinetics
    reference : str
    k1prime, k2prime, k4 : float
        Reference K1' (mL/cm3/min), k2' and receptor-region k4 (1/min).
    bp_cv_subject, bp_cv_region : float
        BP_ND variability shared by all regions of a subject, and per region.
    k1_cv, vnd_cv, k4_cv, input_shape_cv : float
        Subject variability of delivery, nondisplaceable volume, k4 and input clearance.
    retest_cv : float
        Scan-to-scan BP_ND variability of one subject (per region), separate scans only
        differ by it; both windows of one scan share it.
    dose, dose_sd : float
        Injected radioactivity, MBq.
    kbol : float
        Bolus-to-infusion ratio, minutes (windows design). Default 90: half of the dose
        as a bolus and half infused over the 90-min scan, the Michigan [11C]carfentanil
        protocol.
    input_shape : float
        Clearance factor of the parent plasma curve (1 = Feng's FDG shape; carfentanil
        parent clears faster).
    onset, release_kind, ramp : float, str, float
        Release start (minutes, windows design), ``"step"`` or ``"ramp"``, ramp minutes.
    rejection, acceptance : dict of str to float
        Population-mean fractional drop of k3 per region.
    effect_sd : float
        Between-subject SD of each region's fractional drop.
    correlated_sd : float or None
        Between-subject SD of the correlated region's drop (None = ``effect_sd``).
    correlation : float
        Population correlation of the left-amygdala rejection effect with resilience.
    correlated_region : str
    resilience_mean, resilience_sd : float
        ER89-like score (integers 14-56).
    dt : float
        Grid step during the first 5 min (bolus passage), minutes; later steps are 0.05
        and 0.1 min (:func:`pipeline.simulate.compartments.simulation_grid`).
    half_life : float
        C-11 half-life, minutes.
    """

    regions: dict[str, RegionKinetics] = field(default_factory=lambda: dict(REGIONS))
    background: dict[str, RegionKinetics] = field(
        default_factory=lambda: dict(BACKGROUND_CLASSES))
    reference: str = REFERENCE_REGION
    k1prime: float = 0.30
    k2prime: float = 0.12
    k4: float = 0.25
    bp_cv_subject: float = 0.08
    bp_cv_region: float = 0.06
    k1_cv: float = 0.15
    vnd_cv: float = 0.05
    k4_cv: float = 0.05
    input_shape_cv: float = 0.10
    retest_cv: float = 0.03
    dose: float = 555.0
    dose_sd: float = 30.0
    kbol: float = 90.0
    input_shape: float = 1.5
    onset: float = 45.0
    release_kind: str = "step"
    ramp: float = 10.0
    rejection: dict[str, float] = field(default_factory=lambda: dict(REJECTION_RELEASE))
    acceptance: dict[str, float] = field(default_factory=lambda: dict(ACCEPTANCE_RELEASE))
    effect_sd: float = 0.025
    correlated_sd: float | None = None
    correlation: float = 0.6
    correlated_region: str = "amygdala_l"
    resilience_mean: float = 44.0
    resilience_sd: float = 6.0
    dt: float = 0.01
    half_life: float = 20.364

    @property
    def all_classes(self) -> dict[str, RegionKinetics]:
        """Named regions followed by the background tissue classes."""
        return {**self.regions, **self.background}


def default_frames() -> Frames:
    """The 28-frame, 90-min schedule of :data:`FRAME_DURATIONS_S` (minutes)."""
    durations = np.asarray(FRAME_DURATIONS_S, float)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return Frames.from_bids(starts, durations, source="simulated 90-min schedule")
