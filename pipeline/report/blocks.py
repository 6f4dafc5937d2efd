"""Building blocks of report sections: tables, embedded figures, error boxes.

A section is a list of blocks (plain dicts the template renders by their ``kind``). A
figure that fails becomes an error block and a log line; the report goes on.
"""

from __future__ import annotations

import base64
import logging
import math
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pipeline.report.drawing import FigurePool, Pending

__all__ = ["BuildContext", "details", "error_block", "kv_block", "table_block", "text_block"]

log = logging.getLogger("pipeline.report")

_MIME = {"svg": "image/svg+xml", "png": "image/png"}
_P_COLUMNS = {"p", "p_fdr", "p_perm", "p_fwe", "p_unc", "pvalue"}


def _display(value: Any, column: str) -> tuple[str, str | None]:
    """(text shown, full-precision value for ``data-value`` or None) of one table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a", None
    if isinstance(value, bool):
        return str(value), None
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "")
                                  in "iu"):
        return str(int(value)), str(int(value))
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        value = float(value)
        if math.isinf(value):
            return str(value), repr(value)
        if value.is_integer() and abs(value) < 1e12:
            return str(int(value)), repr(value)
        spec = ".3g" if column in _P_COLUMNS else ".6g" if 1e3 <= abs(value) < 1e7 else ".4g"
        return format(value, spec), repr(value)
    return str(value), None


def table_block(table: pd.DataFrame, title: str = "", caption: str = "",
                columns: Iterable[str] | None = None, max_rows: int = 2000,
                table_id: str = "") -> dict[str, Any]:
    """A table block; numbers are shown rounded and kept in full in ``data-value``.

    Parameters
    ----------
    table : DataFrame
        The rows to show.
    title : str, default=""
        Heading above the table.
    caption : str, default=""
        Text below the heading: what the table shows and how to read it.
    columns : iterable of str, default=None
        Columns to show, in order (those present); None shows all.
    max_rows : int, default=2000
        Rows shown at most (the rest are counted in a note).
    table_id : str, default=""
        HTML id of the table (for links and tests).
    """
    cols = [c for c in (columns or table.columns) if c in table.columns]
    shown = table[cols].head(max_rows)
    rows = [[_display(v, c) for v, c in zip(record, cols, strict=True)]
            for record in shown.itertuples(index=False, name=None)]
    note = f"First {max_rows} of {len(table)} rows." if len(table) > max_rows else ""
    return {"kind": "table", "title": title, "caption": caption, "columns": cols,
            "rows": rows, "note": note, "id": table_id}


def text_block(text: str, css: str = "") -> dict[str, Any]:
    """A paragraph of plain text (escaped by the template).

    Parameters
    ----------
    text : str
        The paragraph.
    css : str, default=""
        Extra CSS class (e.g. ``warning``).
    """
    return {"kind": "text", "text": text, "css": css}


def kv_block(items: Mapping[str, Any], title: str = "") -> dict[str, Any]:
    """A two-column key/value list.

    Parameters
    ----------
    items : mapping
        Key -> value, in order.
    title : str, default=""
        Heading above the list.
    """
    return {"kind": "kv", "title": title, "items": [(str(k), str(v)) for k, v in items.items()]}


def error_block(title: str, message: str) -> dict[str, Any]:
    """A red box saying what could not be shown and why.

    Parameters
    ----------
    title : str
        What could not be shown.
    message : str
        Why (the error's text).
    """
    return {"kind": "error", "title": title, "message": message}


def details(summary: str, blocks: list[dict[str, Any]], badges: Iterable[str] = (),
            open_: bool = False, anchor: str = "") -> dict[str, Any]:
    """A foldable group of blocks (``<details>``) with warning badges in its summary line.

    Parameters
    ----------
    summary : str
        The always-visible summary line.
    blocks : list of dict
        The blocks inside.
    badges : iterable of str, default=()
        Warning badges shown in the summary line.
    open_ : bool, default=False
        Start unfolded.
    anchor : str, default=""
        HTML id, for links to this group.
    """
    return {"kind": "details", "summary": summary, "blocks": blocks, "badges": list(badges),
            "open": open_, "id": anchor}


@dataclass
class BuildContext:
    """State shared by the section builders while one report is built.

    Attributes
    ----------
    figure_dir : Path or None
        Where figure files are written (``<output_dir>/group/figures``); None = embed only.
    errors : list of (str, str)
        (what, message) of every figure or section that failed.
    files : list of Path
        Figure files written.
    detailed : int
        Scans drawn with the detailed per-region figure so far (capped by the spec).
    pool : FigurePool or None
        Worker processes that draw the figures (:mod:`pipeline.report.drawing`); None draws
        each in this process when asked for.
    """

    figure_dir: Path | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    detailed: int = 0
    pool: FigurePool | None = None
    _pending: list[Pending] = field(default_factory=list, repr=False)

    def fail(self, what: str, err: BaseException) -> dict[str, Any]:
        """Log a failure with its traceback and return the error block to show instead."""
        message = f"{type(err).__name__}: {err}"
        log.error("report: %s failed: %s\n%s", what, message,
                  "".join(traceback.format_exception(err)))
        self.errors.append((what, message))
        return error_block(f"{what} could not be drawn", message)

    def figure(self, name: str, plot: Callable[..., Any], *args: Any, fmt: str = "svg",
               title: str = "", caption: str = "", dpi: int = 80,
               **kwargs: Any) -> dict[str, Any]:
        """Draw ``plot(*args, **kwargs)``, write ``<figure_dir>/<name>.<fmt>``, embed it.

        Any exception becomes an error block (and a log entry), never a failed report. With
        a :attr:`pool`, the figure is drawn in parallel and the returned block is filled by
        :meth:`finish` (the same block, file and error as drawn here).
        """
        from pipeline.report.drawing import draw, show_warnings

        if self.pool is not None:
            block = {"kind": "figure", "title": title, "caption": caption, "src": "",
                     "alt": title or name, "file": None}
            pending = self.pool.submit(block, name, plot, args, kwargs, fmt=fmt, dpi=dpi,
                                       title=title, caption=caption)
            if pending is not None:
                self._pending.append(pending)
                return block
        try:
            data, embedded, shown = draw(plot, args, kwargs, fmt, dpi)
        except Exception as err:  # one bad figure must not sink the report
            return self.fail(title or name, err)
        show_warnings(shown)
        return self._stored(name, fmt, data, embedded, title, caption)

    def finish(self) -> None:
        """Draw the figures handed to :attr:`pool` that no worker has started, collect the
        others, and fill their blocks in the order they were asked for: write their files,
        show their warnings, or put their error blocks in place
        (:func:`pipeline.report.drawing.drawings_in_order`)."""
        from pipeline.report.drawing import drawings_in_order, show_warnings

        pending, self._pending = self._pending, []
        for item, outcome in drawings_in_order(pending):
            if isinstance(outcome, Exception):
                item.block.clear()
                item.block.update(self.fail(item.title or item.name, outcome))
                continue
            data, embedded, shown = outcome
            show_warnings(shown)
            item.block.update(self._stored(item.name, item.fmt, data, embedded, item.title,
                                           item.caption))

    def _stored(self, name: str, fmt: str, data: bytes, embedded: bytes, title: str,
                caption: str) -> dict[str, Any]:
        """Write a drawn figure's file and return its block."""
        file = None
        if self.figure_dir is not None:
            from pipeline.tables import atomic_path

            target = self.figure_dir / f"{name}.{fmt}"
            try:
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
                self.files.append(target)
                file = target.name
            except OSError as err:
                log.warning("report: could not write %s: %s", target, err)
        uri = f"data:{_MIME[fmt]};base64," + base64.b64encode(embedded).decode("ascii")
        return {"kind": "figure", "title": title, "caption": caption, "src": uri,
                "alt": title or name, "file": file}

    def image_file(self, path: Path, title: str = "", caption: str = "") -> dict[str, Any]:
        """Embed an existing PNG/SVG file (e.g. a region-overlay image)."""
        from pipeline.report.drawing import compact_png

        try:
            fmt = path.suffix.lstrip(".").lower()
            data = path.read_bytes()
            data = compact_png(data) if fmt == "png" else data
            uri = f"data:{_MIME[fmt]};base64," + base64.b64encode(data).decode()
        except (OSError, KeyError) as err:
            return self.fail(title or path.name, err)
        return {"kind": "figure", "title": title, "caption": caption, "src": uri,
                "alt": title or path.name, "file": path.name}
