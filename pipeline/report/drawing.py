"""The report's figures drawn by worker processes and the report's own, in parallel.

Drawing and saving matplotlib figures is most of a report's time (an 18-subject study: 36
scan overviews and a dozen group figures, 10-26 s alone at the end of a run). It holds the
GIL, and in the workflow's default profile jobs are threads of one Snakemake process, so
threads would not draw in parallel. :class:`FigurePool` draws them in spawned processes
(spawn: safe in a multi-threaded parent, unlike fork) while the report's own thread reads
tables and lays out the sections; :meth:`pipeline.report.blocks.BuildContext.figure` hands
each figure to it, and :meth:`BuildContext.finish` draws the figures no worker has started
yet itself, from the last one back while the workers go on from the first
(:func:`drawings_in_order`), then fills the figures' blocks in the order they were asked for.

What a worker returns is what drawing in the report's own process gives: the same function
on the same (pickled) arguments, the same bytes (PNG, and SVG up to matplotlib's random
element ids, as before), warnings filtered as at the call site and shown by the report's
process. Workers write no files: the report writes each figure atomically. A figure that
raises becomes the same error block as before; a figure whose arguments cannot be pickled,
or any figure left when a worker process dies (e.g. killed for memory), is drawn in the
report's process instead. As with any spawned process, the worker imports the parent's main
script: a script that builds a report with workers needs ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

__all__ = ["FigurePool", "Pending", "compact_png", "draw", "drawings_in_order", "show_warnings"]

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
    from pipeline.report.figures import render

    with warnings.catch_warnings(record=True) as caught:
        if filters is not None:
            warnings.filters[:] = filters  # the list catch_warnings restores on exit
        data = render(plot(*args, **kwargs), fmt=fmt, dpi=dpi)
    embedded = compact_png(data) if fmt == "png" else data
    shown = [(str(w.message), w.category, str(w.filename), int(w.lineno)) for w in caught]
    return data, embedded, shown


def compact_png(data: bytes, colors: int = 256) -> bytes:
    """The PNG with a palette of ``colors`` when that is smaller (else unchanged).

    Plots and region overlays use few colours, so a palette keeps them visually intact at
    about half the bytes; this keeps a report of 18+ subjects to a few MB.

    Parameters
    ----------
    data : bytes
        A PNG file's bytes (anything else is returned as it is).
    colors : int, default=256
        Palette size.
    """
    import io

    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
            image = image.convert("RGB")
        # fast octree, default compression: a fifth of the time of median cut with
        # optimize=True on the report's figures, and 30 % smaller (bench_workflow.py)
        buffer = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG")
    except Exception as err:  # an odd PNG is embedded as it is
        log.debug("report: PNG kept as is (%s)", err)
        return data
    small = buffer.getvalue()
    return small if len(small) < len(data) else data


def show_warnings(shown: list[tuple[str, type, str, int]]) -> None:
    """Show warnings :func:`draw` recorded (already filtered where the figure was asked for).

    Parameters
    ----------
    shown : list of (str, type, str, int)
        Message, category, file name and line of each.
    """
    for message, category, filename, lineno in shown:
        warnings.showwarning(message, category, filename, lineno)


def _warm() -> None:
    """Worker start-up: import what drawing needs while the report reads its tables."""
    import pipeline.report.figures
    import pipeline.report.group_figures
    import pipeline.report.scanplots  # noqa: F401


@dataclass
class Pending:
    """A figure handed to a :class:`FigurePool`: what to draw and where it goes."""

    future: Future
    block: dict[str, Any]
    name: str
    plot: Callable[..., Any]
    args: tuple
    kwargs: dict[str, Any]
    fmt: str
    dpi: int
    title: str
    caption: str
    filters: list

    def draw_here(self) -> Drawn | Exception:
        """Draw it in this process: the drawing, or the exception drawing raised."""
        try:
            return draw(self.plot, self.args, self.kwargs, self.fmt, self.dpi, self.filters)
        except Exception as err:  # the caller turns it into the figure's error block
            return err


def drawings_in_order(pending: list[Pending]) -> Iterator[tuple[Pending, Drawn | Exception]]:
    """Each pending figure with its drawing (or the exception it raised), in order.

    Figures no worker has started are drawn here first, from the last one back, while the
    workers go on from the first; a figure whose worker process died is drawn here too.

    Parameters
    ----------
    pending : list of Pending
        The figures handed to a :class:`FigurePool`, in the order they were asked for.
    """
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    here: dict[int, Drawn | Exception] = {}
    for index in reversed(range(len(pending))):
        if pending[index].future.cancel():  # not started by a worker: ours
            here[index] = pending[index].draw_here()
    for index, item in enumerate(pending):
        if index in here:
            yield item, here[index]
            continue
        try:
            yield item, item.future.result()
        except (BrokenProcessPool, CancelledError) as err:
            log.warning("report: %s: the drawing process stopped (%s); drawn here",
                        item.name, type(err).__name__)
            yield item, item.draw_here()
        except Exception as err:  # raised by the figure in the worker
            yield item, err


class FigurePool:
    """Worker processes that draw figures (module docstring).

    Parameters
    ----------
    workers : int
        Processes besides the report's own (at least 1): the workflow's report job draws
        with its ``threads`` processes, this one included.
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

    def submit(self, block: dict[str, Any], name: str, plot: Callable[..., Any], args: tuple,
               kwargs: dict[str, Any], *, fmt: str, dpi: int, title: str,
               caption: str) -> Pending | None:
        """Start drawing a figure whose block is ``block``; None if its arguments cannot be
        sent to a process (the caller then draws it itself).

        Parameters
        ----------
        block : dict
            The figure's block, filled when it is collected.
        name : str
            The figure's file name without suffix.
        plot : callable
            Returns a matplotlib figure.
        args, kwargs
            Its arguments.
        fmt, dpi, title, caption
            As :meth:`pipeline.report.blocks.BuildContext.figure`.
        """
        filters = list(warnings.filters)
        try:  # fails here, not later in the pool's feeder thread
            pickle.dumps((plot, args, kwargs, filters))
        except Exception as err:  # any object pickle refuses: drawn in this process
            log.debug("report: %s drawn in the report's process (%s)", name, err)
            return None
        future = self._pool.submit(draw, plot, args, kwargs, fmt, dpi, filters)
        return Pending(future, block, name, plot, args, kwargs, fmt, dpi, title, caption,
                       filters)

    def close(self) -> None:
        """Stop the workers (figures not yet drawn are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FigurePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
