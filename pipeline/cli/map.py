"""``petbp map``: voxelwise BP_ND (and R1) maps from a 4D PET image.

Example::

    petbp map sub-01_task-rejection_pet.nii.gz --reference-mask cerebellum.nii.gz \\
        --model mrtm2 --mask brain.nii.gz --window 45 90 -o maps/sub-01_rejection

writes ``maps/sub-01_rejection_bpnd.nii.gz``, ``..._r1.nii.gz`` (models with R1),
``..._flags.nii.gz`` and ``..._bpnd.json``. The image may have any name when its JSON
sidecar has the same stem (``pet.nii.gz`` + ``pet.json``) or is given with ``--sidecar``.
"""

from __future__ import annotations

import argparse

__all__ = ["ORDER", "add_parser", "run"]

ORDER = 21


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``petbp map``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``petbp`` parser's subcommands.
    """
    from pipeline.cli._model_help import model_help, models_taking
    from pipeline.kinetics import MODELS
    from pipeline.kinetics.weights import WEIGHT_SCHEMES

    parser = subparsers.add_parser(
        "map", help="voxelwise BP_ND (and R1) maps of a 4D PET image",
        description="Fit a reference-tissue model to every brain voxel of a 4D PET image "
        "(frame timing from its JSON sidecar) and write BP_ND and R1 maps plus a JSON "
        "sidecar. Voxels outside the mask are NaN.")
    parser.add_argument("pet", metavar="PET.nii.gz",
                        help="4D PET image; its JSON sidecar has the same stem (pet.nii.gz + "
                        "pet.json, or BIDS inheritance for *_pet.nii.gz) unless --sidecar "
                        "is given")
    parser.add_argument("--sidecar", metavar="PET.json", default=None,
                        help="the image's JSON sidecar (frame timing, Units, "
                        "ImageDecayCorrected), when it does not share the image's stem")
    parser.add_argument("--reference-mask", required=True, metavar="REF.nii.gz",
                        help="reference-region mask on the PET grid")
    parser.add_argument("--model", required=True, choices=list(MODELS), metavar="MODEL",
                        help=model_help())
    parser.add_argument("--mask", metavar="BRAIN.nii.gz", default=None,
                        help="brain mask on the PET grid (default: voxels with mean activity "
                        "above 5%% of the 98th percentile)")
    parser.add_argument("--window", nargs=2, type=float, metavar=("START", "END"),
                        default=None, help="fit window, minutes after injection")
    parser.add_argument("--tstar", type=float, default=None, metavar="MIN",
                        help="t*, minutes: frames with earlier mid-times are not fitted "
                        f"({models_taking('t_star')})")
    parser.add_argument("--k2prime", type=float, default=None, metavar="VALUE",
                        help=f"reference efflux rate k2', 1/min ({models_taking('k2prime')}); "
                        "a model that needs it estimates it from the 10%% highest-binding "
                        "voxels when omitted")
    parser.add_argument("--weights", default="uniform", choices=list(WEIGHT_SCHEMES),
                        help="frame weights")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_PREFIX",
                        help="output prefix: writes OUT_PREFIX_bpnd.nii.gz and friends")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``petbp map``; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``petbp map`` arguments.
    """
    from pipeline.parametric import write_bp_maps

    options = {}
    if args.tstar is not None:
        options["t_star"] = args.tstar
    if args.k2prime is not None:
        options["k2prime"] = args.k2prime
    written = write_bp_maps(args.pet, args.reference_mask, args.output, model=args.model,
                            mask_path=args.mask, window=args.window, weights=args.weights,
                            sidecar=args.sidecar, **options)
    for path in written.values():
        print(path)
    return 0
