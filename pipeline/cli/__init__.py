"""The ``petbp`` command line.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)``, which registers the subcommand and sets ``func`` (a callable
taking the parsed arguments and returning an exit code). Subcommands call the same
``write_*`` functions as the workflow rules.

Errors in user input (:class:`pipeline.errors.PetbpError`) are printed without a
traceback and give exit status 1; ``--debug`` shows the traceback. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import PetbpError

__all__ = ["build_parser", "main"]


def _subcommand_modules() -> list[str]:
    """Names of the subcommand modules of this package (``check``, ``fit``, ``map``...)."""
    return [info.name for info in pkgutil.iter_modules(__path__)
            if not info.name.startswith("_")]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand found in :mod:`pipeline.cli`.

    Parameters
    ----------
    only : str, default=None
        Import and register only this subcommand's module (a command line that names its
        subcommand need not import the others' dependencies).
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
    modules = []
    for name in _subcommand_modules():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "add_parser"):
            modules.append(module)
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``petbp``; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    named = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(named if named in _subcommand_modules() else None)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
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
