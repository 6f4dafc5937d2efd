"""Noise level of a study's region TACs, in units of the simulator's noise model.

The null drift of within-scan designs depends on noise (noisy windowed fits are biased,
more in small regions), so the null simulation should be as noisy as the data. This module
measures the roughness of TACs, the relative residual variance of a cubic in time fitted to
the frames of a smooth, release-free stretch (default 10-45 min), and converts the study's
roughness into the simulator's ``noise`` level by comparing it with simulations of the same
study at noise 0 (model-free curvature only) and 1:
``level^2 = (v_data - v_0) / (v_1 - v_0)`` per region, median over regions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pipeline.frames import Frames
from pipeline.tables import TacTable

__all__ = ["match_noise_level", "noise_level", "tac_roughness"]

log = logging.getLogger(__name__)


def tac_roughness(tables: Sequence[TacTable], window: tuple[float, float] = (10.0, 45.0),
                  degree: int = 3) -> pd.Series:
    """Median over scans of the relative residual variance of a polynomial fit, per region.

    Parameters
    ----------
    tables : sequence of TacTable
        Region TACs (frames in minutes).
    window : (float, float), default=(10, 45)
        Minutes; frames whose mid-time falls inside are used (at least ``degree + 3``).
    degree : int, default=3
        Polynomial degree in time.

    Returns
    -------
    Series
        Region -> median of ``mean(residual^2) / mean(TAC)^2`` (dimensionless), with the
        residual variance corrected for the fitted degrees of freedom.
    """
    rows = []
    for table in tables:
        mid = table.frames.mid
        sel = (mid >= window[0]) & (mid <= window[1])
        n = int(sel.sum())
        if n < degree + 3:
            continue
        x = mid[sel] - mid[sel].mean()
        design = np.vander(x, degree + 1)
        y = table.tacs.to_numpy(float)[sel]
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ coef
        level = np.abs(y.mean(axis=0))
        with np.errstate(all="ignore"):
            rel = (resid**2).sum(axis=0) / (n - degree - 1) / level**2
        rows.append(pd.Series(rel, index=table.regions))
    if not rows:
        return pd.Series(dtype=float)
    return pd.concat(rows, axis=1).median(axis=1)


def noise_level(observed: pd.Series, noiseless: pd.Series, unit: pd.Series,
                bounds: tuple[float, float] = (0.0, 3.0)) -> float:
    """The simulator noise level whose roughness matches the data's (median over regions).

    Parameters
    ----------
    observed, noiseless, unit : Series
        :func:`tac_roughness` of the study, and of a simulation of it at noise 0 and 1.
    bounds : (float, float), default=(0, 3)
        The estimate is clipped to this range.

    Returns
    -------
    float
        NaN when no region is in all three series.
    """
    common = observed.index.intersection(noiseless.index).intersection(unit.index)
    spread = (unit[common] - noiseless[common])
    ok = spread > 0
    if not ok.any():
        return float("nan")
    square = (observed[common][ok] - noiseless[common][ok]) / spread[ok]
    return float(np.clip(np.sqrt(max(float(np.nanmedian(square)), 0.0)), *bounds))


def match_noise_level(tables: Sequence[TacTable] | None,
                      simulate: Callable[[float], list[TacTable]], frames: Frames) -> float:
    """Noise level of ``simulate`` (level -> simulated TACs) that matches ``tables``.

    Scans with the simulated frame schedule are compared (all scans if none has it).
    Returns 1.0, with a warning, when there are no tables or no estimate.

    Parameters
    ----------
    tables : sequence of TacTable or None
        The study's TACs.
    simulate : callable
        Noise level -> simulated TAC tables of the same protocol.
    frames : Frames
        The simulated frame schedule (minutes).
    """
    if not tables:
        log.warning("null drift: noise auto without the study's TACs; noise level 1.0 used")
        return 1.0
    same = [t for t in tables if t.frames.n_frames == frames.n_frames
            and np.allclose(t.frames.mid, frames.mid)] or list(tables)
    level = noise_level(tac_roughness(same), tac_roughness(simulate(0.0)),
                        tac_roughness(simulate(1.0)))
    if not np.isfinite(level):
        log.warning("null drift: TAC roughness gave no noise level; 1.0 used")
        return 1.0
    log.info("null drift: noise level %.2f (TAC roughness of %d scans vs simulations at "
             "noise 0 and 1)", level, len(same))
    return level
