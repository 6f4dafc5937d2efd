"""Equilibrium tissue ratio: ``BP_ND = mean(C_T) / mean(C_R) - 1`` over a time window.

At true equilibrium (bolus+infusion, Carson et al. 1993) target and reference
concentrations are constant and their ratio is DVR = 1 + BP_ND. Means are
duration-weighted over the frames whose mid-time lies in the window (and after t*), i.e.
the ratio of the activity integrals over the window. Away from equilibrium the ratio is
biased (it overestimates BP_ND while the target still rises relative to the reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._inputs import prepare_inputs
from pipeline.kinetics.result import ModelFit, make_fit

__all__ = ["describe", "fit_ratio"]


def fit_ratio(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
              window: tuple[float | None, float | None] | None = None,
              t_star: float | None = None) -> ModelFit:
    """Equilibrium ratio BP_ND of one or many target TACs.

    Parameters
    ----------
    frames, ref_tac, tacs
        Frame timing (minutes), reference and target TACs (Bq/mL): see
        :func:`pipeline.kinetics.mrtm.fit_mrtm`.
    window : (start, end), default=None
        Minutes: the equilibrium period. Either ``window`` or ``t_star`` is required.
    t_star : float, default=None
        Minutes; frames with an earlier mid-time are left out (window from t* to the end).
        Means are always frame-duration weighted (a ratio of integrals), so the model
        takes no ``weights``.

    Returns
    -------
    ModelFit
        ``bp_nd`` and ``extra['dvr']``; ``r1``, ``k2``, ``k2prime`` and ``se`` are NaN.
        ``fitted`` is ``DVR x C_R`` on the window's frames. Flags: ``nan_input``,
        ``zero_input``, ``constant_input`` (degenerate input: BP_ND is NaN).

    Raises
    ------
    ConfigError
        If neither ``window`` nor ``t_star`` is given.
    InputError
        If the reference is not positive on average over the window, or other bad input.
    """
    if window is None and t_star is None:
        raise ConfigError(format_problem(
            None, "ratio: no equilibrium window given",
            "Give --window START END (minutes) covering the equilibrium period, or --tstar."))
    prep = prepare_inputs(frames, ref_tac, tacs, window=window, t_star=t_star,
                          weights=frames.duration, min_frames=1, model="ratio")
    used = prep.used
    dur = frames.duration[used]
    ref_mean = float(np.dot(dur, prep.ref_tac[used]) / dur.sum())
    if not ref_mean > 0:
        raise InputError(format_problem(
            None, f"ratio: the reference mean over the window is {ref_mean:g} (not positive)",
            "Check the reference region mask and the window."))
    dvr = (dur @ prep.clean_tacs()[used]) / dur.sum() / ref_mean
    fitted = np.full((frames.n_frames, dvr.size), np.nan)
    fitted[used] = prep.ref_tac[used][:, None] * dvr
    result = make_fit("ratio", prep, bp_nd=dvr - 1.0, fitted=fitted,
                      options={"window": window, "t_star": t_star})
    result.options["weights"] = "duration"
    return result


def describe(options: dict[str, Any]) -> str:
    """Methods sentence for the equilibrium ratio method, with its citation.

    Parameters
    ----------
    options : dict
        The fit's options (``window``, ``t_star``).
    """
    window = options.get("window")
    if window:
        start = window[0] if window[0] is not None else 0
        span = f"{start:g}-" + (f"{window[1]:g} min" if window[1] is not None else "end")
    else:
        span = f"{float(options.get('t_star') or 0):g} min to the end of the scan"
    return ("BP_ND was estimated as the ratio of duration-weighted mean target and reference "
            f"activity minus one over {span}, assuming equilibrium under bolus plus constant "
            "infusion (Carson et al., 1993, J Cereb Blood Flow Metab 13:24).")
