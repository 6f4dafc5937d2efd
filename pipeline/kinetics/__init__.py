"""Reference-tissue kinetic models (minutes, 1/min), one module per model family.

Every model has the same first three arguments ``(frames, ref_tac, tacs)`` and returns a
:class:`ModelFit`; options are keyword-only. :func:`fit` picks a model by name and turns
a weighting scheme name into frame weights. The same code fits a few region TACs or a
chunk of voxels (a voxel is a column of ``tacs``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np

from pipeline.kinetics.base import ModelFit

__all__ = ["MODELS", "ModelFit", "fit", "get_model"]

#: Model name -> "module:function" of its fit function (imported on first use).
MODELS: dict[str, str] = {
    "srtm": "pipeline.kinetics.srtm:fit_srtm",
    "srtm_bf": "pipeline.kinetics.srtm:fit_srtm_bf",
    "srtm2": "pipeline.kinetics.srtm2:fit_srtm2",
    "mrtm": "pipeline.kinetics.mrtm:fit_mrtm",
    "mrtm2": "pipeline.kinetics.mrtm:fit_mrtm2",
    "logan_ref": "pipeline.kinetics.logan:fit_logan_ref",
    "ratio": "pipeline.kinetics.ratio:fit_ratio",
}


def get_model(name: str):
    """The fit function of model ``name``, with a clear error for unknown names."""
    from pipeline.errors import ConfigError, format_problem

    if name not in MODELS:
        raise ConfigError(format_problem(
            None, f"unknown model {name!r}", f"Choose one of: {', '.join(MODELS)}."))
    module_name, func_name = MODELS[name].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def fit(model: str, frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
        weights: str | np.ndarray | None = "uniform", half_life: float | None = None,
        **options: Any) -> ModelFit:
    """Fit ``model`` to target TACs; ``weights`` may be a scheme name or an array.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    tacs : ndarray of shape (n_frames,) or (n_frames, n_tacs)
        Target TACs, Bq/mL, decay-corrected.
    weights : {"uniform", "duration", "counts"} or ndarray, default="uniform"
        Frame weighting (see :mod:`pipeline.kinetics.weights`).
    half_life : float, default=None
        Radionuclide half-life, minutes; needed by ``counts`` weights.
    **options
        Model options (``window``, ``t_star``, ``k2prime``, ...).
    """
    from pipeline.errors import ConfigError, format_problem
    from pipeline.kinetics.weights import frame_weights

    func = get_model(model)
    accepted = inspect.signature(func).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    unknown = [] if takes_any else sorted(k for k in options if k not in accepted)
    if unknown:
        usable = [k for k, p in accepted.items() if p.kind is p.KEYWORD_ONLY and k != "weights"]
        raise ConfigError(format_problem(
            None, f"model {model!r} does not take option(s) {', '.join(unknown)}",
            f"Options of {model}: {', '.join(usable)}."))
    scheme = weights if isinstance(weights, str) or weights is None else "custom"
    if isinstance(weights, str) or weights is None:
        weights = frame_weights(weights or "uniform", frames, ref_tac, half_life=half_life)
    result = func(frames, ref_tac, tacs, weights=weights, **options)
    result.options["weights"] = scheme or "uniform"  # the scheme name, for methods text
    return result
