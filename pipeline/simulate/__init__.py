"""Synthetic PET data with known truth: compartment models, noise, phantoms and studies.

Region level (fast, no images): :func:`simulate_region_tacs`. The physics underneath:
:mod:`.inputs` (arterial input with metabolites), :mod:`.release` (two-tissue model with
time-varying receptor availability), :mod:`.noise` (count-following noise),
:mod:`.population` (participants, kinetics, planted release) and :mod:`.carfentanil`
(default [11C]carfentanil values).
"""

from pipeline.simulate.carfentanil import StudySettings, default_frames
from pipeline.simulate.noise import NoiseModel
from pipeline.simulate.release import release_profile, solve_two_tissue
from pipeline.simulate.roi import RegionStudy, simulate_region_tacs

__all__ = [
    "NoiseModel",
    "RegionStudy",
    "StudySettings",
    "default_frames",
    "release_profile",
    "simulate_region_tacs",
    "solve_two_tissue",
]
