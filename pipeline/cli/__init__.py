"""The ``petbp`` command line.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)``, which registers the subcommand and sets ``func`` (a callable
taking the parsed arguments and returning an exit code). Subcommands call the same
``write_*`` functions as the workflow rules.

Only the module of the subcommand given is imported (:data:`COMMANDS` holds each one's
one-line help for ``petbp --help``), so ``petbp --version`` and ``petbp --help`` start
without loading numpy, pandas or nibabel.

Errors in user input (:class:`pipeline.errors.PetbpError`) are printed without a
traceback and give exit status 1; ``--debug`` shows the traceback. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pipeline import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand -> (module, one-line help), in the order ``petbp --help`` lists them. The
#: help must be the one the module's ``add_parser`` registers (a test checks it).
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("pipeline.cli.check",
              "check that a BIDS-PET dataset and config can be analysed"),
    "fit": ("pipeline.cli.fit",
            "fit a reference-tissue model to every region of a TAC table"),
    "map": ("pipeline.cli.map", "voxelwise BP_ND (and R1) maps of a 4D PET image"),
    "report": ("pipeline.cli.report",
               "write report.html (and methods.md) from a finished run"),
    "simulate": ("pipeline.cli.simulate",
                 "simulate a [11C]carfentanil study (BIDS-PET + truth)"),
    "regions": ("pipeline.cli.regions",
                "check a region config: voxel counts, volumes, QC figure"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``command``'s module adds its full subparser (every command's
    when None), the others are listed with their help only.

    Parameters
    ----------
    command : str, default=None
        The subcommand whose options are added; None adds every subcommand's.
    """
    parser = argparse.ArgumentParser(
        prog="petbp",
        description="PET receptor binding-potential studies: from a BIDS-PET dataset to "
        "regional and voxelwise BP_ND, group statistics and a report.",
    )
    parser.add_argument("--version", action="version", version=f"petbp {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(module).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``petbp``; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, default=None
        Command-line arguments without the program name; None reads ``sys.argv``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser(command) if command else build_parser("")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from pipeline.errors import PetbpError

    try:
        return int(args.func(args) or 0)
    except PetbpError as err:
        if args.debug:
            raise
        print(f"petbp {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("petbp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
