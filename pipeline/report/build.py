"""Write ``report.html``: one self-contained file laid out by ``spec.yaml``.

:func:`write_report` reads the output directory (:mod:`pipeline.report.collect`), builds
each section of the spec (:mod:`pipeline.report.sections`), renders them with the Jinja
template in ``templates/`` (inline CSS, images as data URIs, a Content-Security-Policy
that forbids any network request) and writes the HTML, ``methods.md`` and the figure
files atomically. A figure or section that fails becomes an error box in the report and
a log entry; only a report that cannot be written at all raises.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pipeline.errors import ConfigError, format_problem
from pipeline.report.blocks import BuildContext
from pipeline.report.collect import StudyResults, collect_results
from pipeline.report.groups import build_groups
from pipeline.report.methods import methods_markdown
from pipeline.report.sections import BUILDERS as _SECTION_BUILDERS
from pipeline.tables import atomic_path

__all__ = ["DEFAULT_SPEC", "load_spec", "render_report", "write_report"]

log = logging.getLogger("pipeline.report")

_UMASK = os.umask(0)
os.umask(_UMASK)
#: Mode of written files: 0o666 minus the process umask (temporary files start at 0o600).
_FILE_MODE = 0o666 & ~_UMASK

#: Section kind -> builder: those of :mod:`pipeline.report.sections` and the
#: patient-vs-control section (:mod:`pipeline.report.groups`).
BUILDERS = {**_SECTION_BUILDERS, "groups": build_groups}

#: The layout shipped with petbp.
DEFAULT_SPEC = files("pipeline.report") / "spec.yaml"


def load_spec(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a report spec (default: the shipped ``spec.yaml``).

    Parameters
    ----------
    path : str or Path, default=None
        A spec file; None reads the shipped ``spec.yaml``.

    Raises
    ------
    ConfigError
        If the file is not YAML, has no ``sections`` list, or names an unknown ``kind``.
    """
    where = path or "pipeline/report/spec.yaml"
    text = Path(path).read_text() if path else DEFAULT_SPEC.read_text()
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(format_problem(where, f"not valid YAML ({err})",
                                         "Fix the YAML syntax.")) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("sections"), list):
        raise ConfigError(format_problem(where, "no 'sections' list",
                                         "List the report's sections under 'sections:'."))
    for i, section in enumerate(spec["sections"]):
        kind = section.get("kind") if isinstance(section, dict) else None
        if kind not in BUILDERS:
            raise ConfigError(format_problem(
                where, f"section {i} has kind {kind!r}",
                f"Use one of: {', '.join(BUILDERS)}."))
        section.setdefault("id", kind)
        section.setdefault("title", kind.replace("_", " ").capitalize())
        section.setdefault("caption", "")
    return spec


def _toc(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Anchored sub-entries of a section (subjects, other models) for the table of contents."""
    return [(b["summary"].split(" (")[0], b["id"]) for b in blocks
            if b.get("kind") == "details" and b.get("id")]


def render_report(results: StudyResults, spec: Mapping[str, Any], ctx: BuildContext) -> str:
    """Build every section of ``spec`` and render the HTML page.

    Parameters
    ----------
    results : StudyResults
    spec : mapping
        A report spec (:func:`load_spec`).
    ctx : BuildContext
        Collects figure files and errors.

    Returns
    -------
    str
        The complete HTML document.
    """
    from pipeline import __version__

    sections = []
    for section in spec["sections"]:
        if section["kind"] == "errors":  # filled last, once every failure is known
            sections.append({**section, "blocks": [], "toc": []})
            continue
        try:
            blocks = BUILDERS[section["kind"]](results, ctx, section)
        except Exception as err:  # a failed section shows an error box, the rest goes on
            blocks = [ctx.fail(f"section {section.get('title', section['kind'])}", err)]
        sections.append({**section, "blocks": blocks, "toc": _toc(blocks)})
    ctx.finish()  # the figures drawn in worker processes, before the errors are listed
    for section in sections:
        if section["kind"] == "errors":
            section["blocks"] = BUILDERS["errors"](results, ctx, section)
    env = jinja2.Environment(loader=jinja2.PackageLoader("pipeline.report", "templates"),
                             autoescape=True, trim_blocks=False, lstrip_blocks=False,
                             undefined=jinja2.StrictUndefined)
    template = env.get_template("report.html.j2")
    return template.render(
        title=spec.get("title", "petbp report"), sections=sections, version=__version__,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        output_dir=str(results.output_dir))


def _fallback_page(err: BaseException, results: StudyResults) -> str:
    """A minimal self-contained page with the error, when the report itself failed."""
    import html
    import traceback

    trace = "".join(traceback.format_exception(err))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
            "<title>petbp report: error</title></head><body><h1>petbp report could not be "
            "built</h1><p>The analysis outputs under <code>"
            f"{html.escape(str(results.output_dir))}</code> are unaffected. Please report "
            "this error with the text below.</p><pre>" + html.escape(trace)
            + "</pre></body></html>")


def write_report(output_dir: str | Path, config: Mapping[str, Any] | None,
                 out_html: str | Path, *, methods_md: str | Path | None = None,
                 spec: str | Path | None = None,
                 figure_dir: str | Path | None = None, workers: int = 1) -> Path:
    """Write the study's HTML report (and optionally ``methods.md``).

    Parameters
    ----------
    output_dir : str or Path
        The workflow's output directory (``group/``, ``sub-*/``).
    config : mapping or None
        The validated configuration that ran; None reads ``<output_dir>/config.yaml``
        when present.
    out_html : str or Path
        The report file to write.
    methods_md : str or Path, default=None
        Also write the methods text as Markdown here.
    spec : str or Path, default=None
        A report layout file; None uses the shipped ``spec.yaml``.
    figure_dir : str or Path, default=None
        Where figure files go; default ``<output_dir>/group/figures``.
    workers : int, default=1
        Processes that draw the figures, this one included (:mod:`pipeline.report.drawing`:
        the workflow gives the job's threads); 1 draws each in this process when asked for.
        The report is the same either way.

    Returns
    -------
    Path
        ``out_html``.

    Raises
    ------
    InputError
        If ``output_dir`` does not exist.
    ConfigError
        If ``spec`` is invalid.
    """
    layout = load_spec(spec)
    pool = None
    if workers > 1:  # started first: the workers' imports overlap reading the results
        from pipeline.report.drawing import FigurePool

        pool = FigurePool(workers - 1)  # this process draws too
    try:
        results = collect_results(output_dir, config)
        figure_dir = Path(figure_dir) if figure_dir else Path(output_dir) / "group" / "figures"
        figure_dir.mkdir(parents=True, exist_ok=True)
        ctx = BuildContext(figure_dir=figure_dir, pool=pool)
        try:
            html = render_report(results, layout, ctx)
        except Exception as err:  # a broken report must not sink the run: say what broke
            log.exception("report: the page could not be rendered")
            html = _fallback_page(err, results)
    finally:
        if pool is not None:
            pool.close()
    out_html = Path(out_html)
    with atomic_path(out_html) as tmp:
        tmp.write_text(html, encoding="utf-8")
    if methods_md is not None:
        with atomic_path(methods_md) as tmp:
            tmp.write_text(methods_markdown(results), encoding="utf-8")
    for path in (out_html, methods_md, *ctx.files):  # readable by others, like any result
        if path is not None and Path(path).is_file():
            Path(path).chmod(_FILE_MODE)
    for what, message in ctx.errors:
        log.warning("report: %s: %s", what, message)
    log.info("report: wrote %s (%d figures, %d errors)", out_html, len(ctx.files),
             len(ctx.errors) + len(results.problems))
    return out_html
