"""``petbp fit TACS.tsv --reference REGION --model MODEL -o OUT.tsv``: regional BP_ND.

Calls :func:`pipeline.kinetics.write_region_fits`, the step the workflow's ``fit_regions``
rule runs for each configured model (:func:`pipeline.kinetics.write_scan_fits`), and prints
the fit table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli._model_help import model_help, models_taking
from pipeline.errors import InputError, format_problem
from pipeline.kinetics import MODELS
from pipeline.kinetics.weights import WEIGHT_SCHEMES

__all__ = ["ORDER", "add_parser", "run"]

ORDER = 20


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``petbp fit``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``petbp`` parser's subcommands.
    """
    parser = subparsers.add_parser(
        "fit", help="fit a reference-tissue model to every region of a TAC table",
        description="Fit a reference-tissue model to every region of a TAC table except the "
        "reference, and write one row per region (the same columns for every model: bp_nd, "
        "r1, k2, k2prime, standard errors, fit quality, flags), a JSON sidecar saying how it "
        "was made, and the measured and fitted curves (OUT_fits.tsv). Times on the command "
        "line are minutes after injection.")
    parser.add_argument("tacs", metavar="TACS.tsv",
                        help="TAC table: frame_start, frame_end (seconds), then one column per "
                        "region (Bq/mL, decay-corrected)")
    parser.add_argument("--reference", metavar="REGION", required=True,
                        help="reference region (a column of the TAC table)")
    parser.add_argument("--model", metavar="MODEL", required=True, choices=list(MODELS),
                        help=model_help())
    parser.add_argument("--window", metavar=("START", "END"), nargs=2, type=float,
                        default=None,
                        help="fit only frames whose mid-time lies in START-END (minutes)")
    parser.add_argument("--tstar", metavar="MIN", type=float, default=None,
                        help=f"t*, minutes: {models_taking('t_star')} fit frames after it")
    parser.add_argument("--k2prime", metavar="VALUE", type=float, default=None,
                        help=f"reference efflux k2', 1/min, for {models_taking('k2prime')}; "
                        "a model that needs it estimates it from all target regions if omitted")
    parser.add_argument("--weights", metavar="SCHEME", default="uniform",
                        choices=list(WEIGHT_SCHEMES),
                        help=f"frame weights: {', '.join(WEIGHT_SCHEMES)} (default uniform; "
                        "counts needs TracerRadionuclide in the TAC table's JSON sidecar)")
    parser.add_argument("-o", "--output", metavar="OUT.tsv", required=True,
                        help="fit table to write (its .json sidecar and _fits.tsv go beside it)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Fit and write; print the table. Returns 0.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``petbp fit`` arguments.
    """
    import pandas as pd

    from pipeline.kinetics import write_region_fits

    tacs = Path(args.tacs)
    out = Path(args.output)
    if out.resolve() == tacs.resolve():
        raise InputError(format_problem(
            out, "the output would overwrite the input TAC table",
            "Give another output path with -o."))
    options = {"weights": args.weights}
    if args.tstar is not None:
        options["t_star"] = args.tstar
    if args.k2prime is not None:
        options["k2prime"] = args.k2prime
    conditions = None
    if args.window:
        start, end = args.window
        conditions = [(f"{start:g}-{end:g}min", (start, end))]
    table = write_region_fits(tacs, out, reference=args.reference, model=args.model,
                              conditions=conditions, options=options)
    columns = ["region", "bp_nd", "se_bp_nd", "r1", "k2", "k2prime", "flags"]
    if conditions:
        columns.insert(0, "condition")
    with pd.option_context("display.width", 120, "display.max_rows", 500):
        print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}",
                                       na_rep="n/a"))
    print(f"wrote {out}")
    return 0
