"""``petbp regions``: list a region config's regions on a grid, optionally draw the QC figure."""

from __future__ import annotations

import argparse

__all__ = ["ORDER", "add_parser", "run"]

ORDER = 30


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``petbp regions``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``petbp`` parser's subcommands.
    """
    parser = subparsers.add_parser(
        "regions", help="check a region config: voxel counts, volumes, QC figure",
        description="Validate a region config, build its regions on the MNI grid (or on a PET "
        "image's grid) and print each region's voxel count, volume (mL) and fraction outside "
        "the field of view. Errors name the config file and region.")
    parser.add_argument("--config", default=None, metavar="REGIONS_YAML",
                        help="region config (default: config/regions.yaml)")
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--image", default=None, metavar="PET_NIFTI",
                      help="use this image's grid (must be in MNI space); its mean image is "
                      "also drawn in the QC figure")
    grid.add_argument("--resolution", type=int, choices=(1, 2, 3), default=2,
                      help="MNI grid voxel size in mm when no --image is given (default: 2)")
    parser.add_argument("--qc", default=None, metavar="OUT_PNG",
                        help="write the QC figure (regions over the MNI template and the image)")
    parser.add_argument("--tsv", default=None, metavar="OUT_TSV",
                        help="also write the table as TSV")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the regions and print the table; returns 0.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``petbp regions`` arguments.
    """
    import nibabel as nib
    import pandas as pd

    from pipeline.regions import build_masks, load_region_config
    from pipeline.space import mni_grid

    region_set = load_region_config(args.config)
    background = None
    if args.image:
        img = nib.load(args.image)
        shape, affine = img.shape[:3], img.affine
        background = img
        grid_name = f"grid of {args.image}"
    else:
        shape, affine = mni_grid(args.resolution)
        grid_name = f"MNI {args.resolution} mm grid {shape}"
    masks = build_masks(region_set, shape, affine, source=args.image)
    table = pd.DataFrame(masks.summary())
    print(f"{region_set.path}: region set '{region_set.name}', {len(table)} regions on the "
          f"{grid_name}; reference '{region_set.reference}'")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.tsv:
        from pipeline.tables import provenance, write_table

        write_table(args.tsv, table, provenance(RegionConfig=masks.provenance, Grid=grid_name))
        print(f"wrote {args.tsv}")
    if args.qc:
        from pipeline.regions.qc import plot_region_qc

        plot_region_qc(masks, background, args.qc)
        print(f"wrote {args.qc}")
    return 0
