"""Plot functions for the tests of drawing in worker processes (importable by a spawned
worker, unlike a test's local function or a monkeypatch)."""

from __future__ import annotations

import multiprocessing
import os
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def line(values, *, colour="C0"):
    """A small line plot of ``values`` in ``colour`` (or the colour ``colour()`` gives)."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(values, color=colour() if callable(colour) else colour)
    return fig


def planted_failure(*args, **kwargs):
    raise RuntimeError("planted failure")


def warns(values):
    """``line`` that warns (a UserWarning) while drawing."""
    warnings.warn("planted warning", UserWarning, stacklevel=1)
    return line(values)


def dies_in_a_worker(values):
    """``line``, except in a worker process, which it ends at once (as the kernel's OOM
    killer would)."""
    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return line(values)
