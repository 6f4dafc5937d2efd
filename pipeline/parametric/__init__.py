"""Parametric maps: the kinetic models of :mod:`pipeline.kinetics` on every voxel.

- :func:`fit_voxels` (:mod:`~pipeline.parametric.voxels`): a model on every voxel of a
  (frames last) array, in memory-bounded chunks, with flag codes per voxel;
- :func:`write_bp_maps` (``petbp map``) and :func:`write_scan_maps` (the workflow's
  ``parametric_maps`` rules: a scan's analysis mask, then every condition window's map from
  one image read, :func:`write_condition_maps`), in :mod:`~pipeline.parametric.maps`;
- :func:`write_analysis_mask` (the analysis mask) and the other masks, in
  :mod:`~pipeline.parametric.masks`.
"""

from __future__ import annotations

from pipeline.parametric.maps import (
    write_bp_maps,
    write_condition_map,
    write_condition_maps,
    write_scan_maps,
)
from pipeline.parametric.masks import (
    analysis_mask,
    default_mask,
    load_mask,
    reference_tac,
    write_analysis_mask,
)
from pipeline.parametric.voxels import DEFAULT_CHUNK_VOXELS, FLAG_CODES, fit_voxels, flag_codes

__all__ = [
    "DEFAULT_CHUNK_VOXELS",
    "FLAG_CODES",
    "analysis_mask",
    "default_mask",
    "fit_voxels",
    "flag_codes",
    "load_mask",
    "reference_tac",
    "write_analysis_mask",
    "write_bp_maps",
    "write_condition_map",
    "write_condition_maps",
    "write_scan_maps",
]
