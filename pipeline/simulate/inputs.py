"""Arterial input of [11C]carfentanil: parent plasma, labelled metabolites and whole blood.

The parent (unmetabolized) plasma curve after a bolus has the shape of Feng et al. (1993)
model 4. Labelled metabolites of carfentanil are polar and do not enter the brain, but they
are in the blood and so in the vascular fraction of every voxel. After a bolus the parent
fraction of plasma activity falls as ``f(t) = f_inf + (1 - f_inf) exp(-ln2 t / t_half)``
(defaults 0.35 and 15 min: about 2/3 parent at 10 min and 40 % at 60 min, the range reported
for [11C]carfentanil); the metabolite curve after a bolus is ``P(t) (1 / f(t) - 1)``.
Because the whole system is linear and time-invariant, a bolus + constant infusion is the
same superposition for the parent and the metabolites (:func:`bolus_infusion_input`), so
the parent fraction during an infusion follows from the physics instead of being imposed.

Times are minutes; activity Bq/mL, decay-corrected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.simulate.compartments import (
    FENG_FDG,
    FengParameters,
    bolus_infusion_input,
    feng_input,
)

__all__ = ["InputSettings", "PlasmaInput", "plasma_input"]


@dataclass(frozen=True)
class InputSettings:
    """How the arterial input is made.

    Parameters
    ----------
    peak : float, default=40000.0
        Peak parent plasma activity of a pure bolus of ``reference_dose``, Bq/mL.
    reference_dose : float, default=555.0
        Injected radioactivity (MBq) that gives ``peak``; inputs scale with the dose.
    parent_fraction_inf : float, default=0.35
        Parent fraction of plasma activity long after a bolus.
    parent_half_time : float, default=15.0
        Minutes for the parent fraction to fall half-way to ``parent_fraction_inf``.
    blood_plasma_ratio : float, default=1.0
        Whole-blood to plasma activity ratio (vascular term).
    feng : FengParameters, default=FENG_FDG
        Shape of the parent bolus curve.
    """

    peak: float = 40000.0
    reference_dose: float = 555.0
    parent_fraction_inf: float = 0.35
    parent_half_time: float = 15.0
    blood_plasma_ratio: float = 1.0
    feng: FengParameters = FENG_FDG


@dataclass(frozen=True)
class PlasmaInput:
    """An arterial input on a fine grid (minutes; Bq/mL, decay-corrected).

    Attributes
    ----------
    t : ndarray of shape (n,)
    parent : ndarray of shape (n,)
        Metabolite-corrected plasma activity (drives the tissue).
    blood : ndarray of shape (n,)
        Whole-blood activity, parent + metabolites (the vascular term).
    protocol : str
        ``"bolus"`` or ``"bolus-infusion"``.
    kbol : float or None
        Bolus-to-infusion ratio, minutes.
    """

    t: np.ndarray
    parent: np.ndarray
    blood: np.ndarray
    protocol: str
    kbol: float | None


def plasma_input(t: np.ndarray, *, dose: float = 555.0, kbol: float | None = None,
                 shape: float = 1.0, settings: InputSettings = InputSettings()) -> PlasmaInput:
    """Parent plasma and whole-blood curves for a bolus or a bolus + constant infusion.

    Parameters
    ----------
    t : ndarray of shape (n,)
        Even grid from 0, minutes; an infusion runs to its last time.
    dose : float, default=555.0
        Injected radioactivity, MBq (bolus and infusion together).
    kbol : float, default=None
        None for a pure bolus; otherwise the bolus-to-infusion ratio in minutes (the bolus
        equals ``kbol`` minutes of infusion; Kbol = 90 puts half of a 90-min dose in the
        bolus, as in the Michigan [11C]carfentanil studies).
    shape : float, default=1.0
        Multiplies the slow clearance rates of the bolus curve (subject variability of the
        input's shape; 1.1 clears 10 % faster).
    settings : InputSettings

    Returns
    -------
    PlasmaInput
    """
    t = np.asarray(t, float)
    p = settings.feng
    params = FengParameters(p.a1, p.a2, p.a3, p.l1, p.l2 * shape, p.l3 * shape)
    unit = feng_input(t, params=params)
    parent = unit * (settings.peak / _bolus_peak(settings.feng)) * (dose / settings.reference_dose)
    f_inf = settings.parent_fraction_inf
    fraction = f_inf + (1.0 - f_inf) * np.exp(-math.log(2.0) * t / settings.parent_half_time)
    metabolites = parent * (1.0 / fraction - 1.0)
    if kbol is not None:
        if kbol <= 0:
            raise ValueError(f"kbol must be positive minutes, got {kbol}")
        parent = bolus_infusion_input(t, parent, kbol)
        metabolites = bolus_infusion_input(t, metabolites, kbol)
    blood = settings.blood_plasma_ratio * (parent + metabolites)
    return PlasmaInput(t=t, parent=parent, blood=blood,
                       protocol="bolus" if kbol is None else "bolus-infusion", kbol=kbol)


def _bolus_peak(params: FengParameters) -> float:
    """Peak of the unscaled Feng curve (found on a 0.001-min grid over the first 3 min)."""
    grid = np.arange(0.0, 3.0, 0.001)
    return float(np.max(feng_input(grid, params=params)))
