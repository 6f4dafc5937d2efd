"""Regions: atlas-based region masks on PET grids, TAC extraction and region QC.

Public API::

    region_set = load_region_config("config/regions.yaml")
    masks = build_masks(region_set, shape, affine)      # weights (n_regions, *shape)
    tacs = extract_tacs(data, masks)                     # (n_frames, n_regions), Bq/mL
    write_region_tacs(pet_path, "config/regions.yaml", out_tsv)
    plot_region_qc(masks, pet_image, "regions_qc.png")  # over MNI template and scan mean
"""

from pipeline.regions.atlas import BUILTIN_ATLASES, Atlas, read_label_table
from pipeline.regions.config import (
    DEFAULT_REGION_CONFIG,
    RegionSet,
    RegionSpec,
    load_region_config,
)
from pipeline.regions.extract import RegionTacs, extract_tacs, region_tacs, write_region_tacs
from pipeline.regions.masks import RegionMasks, build_masks, label_image
from pipeline.regions.qc import plot_region_qc, write_region_qc

__all__ = [
    "BUILTIN_ATLASES",
    "DEFAULT_REGION_CONFIG",
    "Atlas",
    "RegionMasks",
    "RegionSet",
    "RegionSpec",
    "RegionTacs",
    "build_masks",
    "extract_tacs",
    "label_image",
    "load_region_config",
    "plot_region_qc",
    "read_label_table",
    "region_tacs",
    "write_region_qc",
    "write_region_tacs",
]
