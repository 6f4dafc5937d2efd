"""Synthetic PET data with known truth: compartment models, noise, phantoms and studies.

Whole studies as BIDS-PET with a truth folder: :func:`simulate_study`,
:func:`write_demo_study`. Region level (fast, no images): :func:`simulate_region_tacs`.
The physics underneath: :mod:`.inputs` (arterial input with metabolites), :mod:`.release`
(two-tissue model with time-varying receptor availability), :mod:`.noise` (count-following
noise), :mod:`.phantom` and :mod:`.images` (MNI phantom, PSF, voxel variability),
:mod:`.population` (participants, kinetics, planted release) and :mod:`.carfentanil`
(default [11C]carfentanil values).
"""

from pipeline.simulate.carfentanil import StudySettings, default_frames
from pipeline.simulate.noise import NoiseModel
from pipeline.simulate.release import release_profile, solve_two_tissue
from pipeline.simulate.roi import RegionStudy, simulate_region_tacs
from pipeline.simulate.study import demo_settings, simulate_study, write_demo_study

__all__ = [
    "NoiseModel",
    "RegionStudy",
    "StudySettings",
    "default_frames",
    "demo_settings",
    "release_profile",
    "simulate_region_tacs",
    "simulate_study",
    "solve_two_tissue",
    "write_demo_study",
]
