"""The report's figures drawn in worker processes while the rest of the report is built.

Drawing and saving matplotlib figures is most of a report's time (an 18-subject study: 36
scan overviews and a dozen group figures, 10-26 s alone at the end of a run). It holds the
GIL, and in the workflow's default profile jobs are threads of one Snakemake process, so
threads would not draw in parallel. :class:`FigurePool` draws them in ``workers`` spawned
processes (spawn: safe in a multi-threaded parent, unlike fork) while the report's own
thread reads tables and lays out the sections; :meth:`pipeline.report.blocks.BuildContext.figure`
hands each figure to it and fills the figure's block when :meth:`BuildContext.finish` collects
the results, in the order the figures were asked for.

What a worker returns is what drawing in the report's own process gives: the same function
on the same (pickled) arguments, the same bytes (PNG, and SVG up to matplotlib's random
element ids, as before), warnings filtered as at the call site and shown by the report's
process. Workers write no files: the report writes each figure atomically. A figure that
raises becomes the same error block as before; a figure whose arguments cannot be pickled,
or any figure left when a worker process dies (e.g. killed for memory), is drawn in the
report's process instead.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["FigurePool", "draw"]

log = logging.getLogger("pipeline.report")

#: A drawn figure: the file's bytes, the bytes to embed, and the warnings drawing showed as
#: (message, category, file name, line).
Drawn = tuple[bytes, bytes, list[tuple[str, type, str, int]]]


def draw(plot: Callable[..., Any], args: tuple, kwargs: dict[str, Any], fmt: str, dpi: int,
         filters: list | None = None) -> Drawn:
    """Draw ``plot(*args, **kwargs)`` and render it (the work of one figure, in any process).

    Parameters
    ----------
    plot : callable
        Returns a matplotlib figure.
    args, kwargs
        Its arguments.
    fmt : {"svg", "png"}
        File format.
    dpi : int
        Resolution of a PNG.
    filters : list, default=None
        The warning filters in effect where the figure was asked for (``warnings.filters``);
        None: this process's own.

    Returns
    -------
    file_bytes : bytes
        The figure file.
    embedded : bytes
        What the page embeds (a PNG reduced to a palette when smaller).
    warnings : list of (str, type, str, int)
        Warnings that passed ``filters`` while drawing, to be shown by the caller.
    """
    from pipeline.report.blocks import _compact_png
    from pipeline.report.figures import render

    with warnings.catch_warnings(record=True) as caught:
        if filters is not None:
            warnings.filters[:] = filters  # the list catch_warnings restores on exit
        data = render(plot(*args, **kwargs), fmt=fmt, dpi=dpi)
    embedded = _compact_png(data) if fmt == "png" else data
    shown = [(str(w.message), w.category, str(w.filename), int(w.lineno)) for w in caught]
    return data, embedded, shown


def show_warnings(shown: list[tuple[str, type, str, int]]) -> None:
    """Show warnings :func:`draw` recorded (already filtered where the figure was asked for)."""
    for message, category, filename, lineno in shown:
        warnings.showwarning(message, category, filename, lineno)


def _warm() -> None:
    """Worker start-up: import what drawing needs while the report reads its tables."""
    import pipeline.report.figures
    import pipeline.report.group_figures
    import pipeline.report.scanplots  # noqa: F401


class FigurePool:
    """Worker processes that draw figures (module docstring).

    Parameters
    ----------
    workers : int
        Processes (at least 1); the workflow gives the report job's thread count.
    """

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max(1, int(workers))
        self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_warm)
        for _ in range(self.workers):  # start them now: their imports overlap the reading
            self._pool.submit(int)

    def submit(self, plot: Callable[..., Any], args: tuple, kwargs: dict[str, Any], fmt: str,
               dpi: int) -> Future | None:
        """Start drawing a figure; None if its arguments cannot be sent to a process (the
        caller then draws it itself)."""
        task = (plot, args, kwargs, fmt, dpi, list(warnings.filters))
        try:
            pickle.dumps(task)  # fails here, not later in the pool's feeder thread
        except Exception as err:  # any object pickle refuses: drawn in this process
            log.debug("report: %s drawn in the report's process (%s)", plot, err)
            return None
        return self._pool.submit(draw, *task)

    def close(self) -> None:
        """Stop the workers (figures not yet drawn are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FigurePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
