"""``petbp report OUTPUT_DIR``: write the study's HTML report from a finished run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.errors import InputError, format_problem

__all__ = ["ORDER", "add_parser", "run"]

#: Position among the subcommands in ``petbp --help``.
ORDER = 60


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``petbp report``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``petbp`` parser's subcommands.
    """
    parser = subparsers.add_parser(
        "report", help="write report.html (and methods.md) from a finished run",
        description="Build one self-contained HTML report (figures embedded, no network "
                    "access needed) from the outputs of a petbp run, and the methods text "
                    "as methods.md next to it. Figure files go to OUTPUT_DIR/group/figures/.")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", type=Path,
                        help="the run's output directory (with group/ and sub-*/)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="the config.yaml the run used (default: OUTPUT_DIR/config.yaml "
                             "if present)")
    parser.add_argument("-o", "--output", type=Path, metavar="HTML",
                        help="report file (default: OUTPUT_DIR/report.html)")
    parser.add_argument("--methods", type=Path, metavar="MD",
                        help="methods text file (default: next to the report, methods.md)")
    parser.add_argument("--spec", type=Path, metavar="YAML",
                        help="a report layout file instead of the shipped spec.yaml")
    parser.add_argument("--methods-only", action="store_true",
                        help="write only the methods text (fast; no figures, no HTML)")
    parser.set_defaults(func=run)
    return parser


def _read_config(path: Path | None, output_dir: Path) -> dict:
    """The run's config: ``--config`` (validated, defaults filled), else the one saved in
    ``OUTPUT_DIR/config.yaml``, else the shipped defaults; ``output_dir`` set to OUTPUT_DIR."""
    from pipeline.config import effective_config, load_config

    if path is None and (output_dir / "config.yaml").is_file():
        path = output_dir / "config.yaml"
    elif path is None:
        print("petbp report: no --config given; describing the run with the default "
              "configuration", file=sys.stderr)
    # as the workflow's report: the configuration in effect, compared with what each output
    # records (a warning names outputs made with other values)
    return effective_config(load_config(path, overrides={"output_dir": str(output_dir)}))


def run(args: argparse.Namespace) -> int:
    """Write the report; print where it went.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``petbp report`` arguments.
    """
    from pipeline.report import write_report

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    output = args.output or args.output_dir / "report.html"
    methods = args.methods or output.with_name("methods.md")
    if not args.output_dir.is_dir():
        raise InputError(format_problem(args.output_dir, "output directory not found",
                                        "Give the output_dir of a finished run."))
    config = _read_config(args.config, args.output_dir)
    if args.methods_only:
        from pipeline.report import collect_results, methods_markdown
        from pipeline.tables import atomic_path

        text = methods_markdown(collect_results(args.output_dir, config))
        with atomic_path(methods) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"petbp report: wrote {methods}")
        return 0
    path = write_report(args.output_dir, config, output, methods_md=methods,
                        spec=args.spec)
    print(f"petbp report: wrote {path} and {methods}")
    return 0
