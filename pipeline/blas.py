"""BLAS threads: one per process where the matrix products are small or run per chunk.

On a busy machine OpenBLAS threads spin against each other: a 15 x 271k by 271k x 17
product took 2.8 s with 2 threads and 0.08 s with 1 under load (the simulator's image
products); the voxel fits' small per-chunk products behave the same way.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["one_blas_thread"]


def one_blas_thread() -> Any:
    """A context manager that limits BLAS to one thread (a no-op without threadpoolctl).

    Returns
    -------
    context manager
        ``threadpoolctl.threadpool_limits(1, "blas")``, or ``contextlib.nullcontext()``.

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of petbp
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
