"""The result every kinetic model returns, and the one constructor that builds it.

:func:`make_fit` is the only way a model makes a :class:`ModelFit`: it fills what the model
does not estimate with NaN, gives every fit the same standard-error keys
(:data:`SE_KEYS`), the same option keys (:data:`COMMON_OPTIONS`) and the same fit-quality
measures, and turns degenerate target TACs (NaN, all zero, constant) into flags with NaN
estimates instead of numbers or exceptions. So every model's table has the same columns
(:data:`FIT_COLUMNS`) and tables of different models concatenate with no special cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.kinetics._inputs import row_selector

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from pipeline.kinetics._inputs import PreparedInputs

__all__ = [
    "COLUMN_DESCRIPTIONS",
    "COMMON_OPTIONS",
    "DEGENERATE_FLAGS",
    "FIT_COLUMNS",
    "SE_KEYS",
    "ModelFit",
    "join_flags",
    "make_fit",
]

#: Estimates with a standard error in every fit (NaN where the model does not estimate one).
SE_KEYS: tuple[str, ...] = ("bp_nd", "r1", "k2", "k2prime")
#: Option keys every fit records (None where the model does not use the option).
COMMON_OPTIONS: tuple[str, ...] = ("model", "window", "t_star", "weights", "frame_weights",
                                   "k2prime")
#: Flags of target TACs that hold no information; their estimates are NaN.
DEGENERATE_FLAGS: tuple[str, ...] = ("nan_input", "zero_input", "constant_input")

#: Columns of :meth:`ModelFit.to_frame`, the same for every model, in order.
FIT_COLUMNS: tuple[str, ...] = (
    "region", "model", "bp_nd", "r1", "k2", "k2prime", "k2a", "dvr",
    "se_bp_nd", "se_r1", "se_k2", "se_k2prime", "n_frames", "rmse", "nrmse", "flags")

#: Column -> description with units (for the JSON sidecar of fit tables).
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "region": "target region (TAC table column)",
    "model": "kinetic model",
    "bp_nd": "non-displaceable binding potential (unitless)",
    "r1": "relative delivery K1/K1' (unitless); n/a where the model does not estimate it",
    "k2": "target efflux rate constant (1/min); n/a where not estimated",
    "k2prime": "reference efflux rate constant used or estimated (1/min); n/a where unused",
    "k2a": "apparent efflux rate k2/(1+BP_ND) (1/min); n/a without k2",
    "dvr": "distribution volume ratio 1 + BP_ND (unitless)",
    "se_bp_nd": "standard error of bp_nd (unitless); n/a where the model gives none",
    "se_r1": "standard error of r1 (unitless)",
    "se_k2": "standard error of k2 (1/min)",
    "se_k2prime": "standard error of k2prime (1/min); n/a where k2' was given",
    "n_frames": "frames inside the fit window (and after t*)",
    "rmse": "root mean square residual over fitted frames (Bq/mL)",
    "nrmse": "rmse divided by the mean absolute target activity over fitted frames",
    "flags": "';'-joined problems: nan_input, zero_input, constant_input, at_bound, "
             "not_converged, grid_edge, bf_fallback, large_se, singular, nonphysical, "
             "nonpositive_tac; empty when clean",
}


@dataclass(frozen=True)
class ModelFit:
    """Result of fitting one reference-tissue model to one or many target TACs.

    Made by :func:`make_fit`; every model fills every field (NaN where it does not
    estimate a quantity).

    Attributes
    ----------
    model : str
        A name of :data:`pipeline.kinetics.MODELS`.
    bp_nd : ndarray of shape (n_tacs,)
        Non-displaceable binding potential, unitless.
    r1 : ndarray of shape (n_tacs,)
        K1/K1' (unitless); NaN where the model does not estimate it.
    k2 : ndarray of shape (n_tacs,)
        Target efflux rate constant, 1/min; NaN where not estimated.
    k2prime : ndarray of shape (n_tacs,)
        Reference efflux rate constant used or estimated, 1/min; NaN where not used.
    se : dict of str to ndarray
        Absolute standard errors keyed by :data:`SE_KEYS`, in the estimates' units.
    fitted : ndarray of shape (n_frames, n_tacs)
        Model prediction, Bq/mL, frame-averaged, NaN for frames outside the fit.
    used : ndarray of shape (n_frames,)
        Frames inside the fit window (and after t*), bool.
    flags : ndarray of shape (n_tacs,)
        ``""`` for a clean fit, else ``;``-joined flags such as ``at_bound``,
        ``not_converged``, ``nan_input``.
    options : dict
        Everything needed to redo the fit: :data:`COMMON_OPTIONS` plus the model's own.
    extra : dict of str to ndarray
        Per-TAC quantities: ``k2a`` (1/min), ``dvr``, ``rmse`` (Bq/mL), ``nrmse`` for every
        model, plus model-specific ones (e.g. Logan's ``intercept``, minutes).
    """

    model: str
    bp_nd: np.ndarray
    r1: np.ndarray
    k2: np.ndarray
    k2prime: np.ndarray
    se: dict[str, np.ndarray]
    fitted: np.ndarray
    used: np.ndarray
    flags: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_tacs(self) -> int:
        """Number of target TACs fitted."""
        return int(np.asarray(self.bp_nd).size)

    def to_frame(self, names: Sequence[str]) -> pd.DataFrame:
        """One row per target TAC with the columns :data:`FIT_COLUMNS`, for every model.

        Parameters
        ----------
        names : sequence of str
            Region names, one per fitted TAC.
        """
        import pandas as pd

        names = list(names)
        if len(names) != self.n_tacs:
            raise ValueError(f"{len(names)} names for {self.n_tacs} fitted TACs")
        columns: dict[str, Any] = {"region": names, "model": self.model}
        for key in ("bp_nd", "r1", "k2", "k2prime"):
            columns[key] = np.asarray(getattr(self, key), float)
        for key in ("k2a", "dvr"):
            columns[key] = np.asarray(self.extra[key], float)
        for key in SE_KEYS:
            columns[f"se_{key}"] = np.asarray(self.se[key], float)
        columns["n_frames"] = int(np.count_nonzero(self.used))
        for key in ("rmse", "nrmse"):
            columns[key] = np.asarray(self.extra[key], float)
        columns["flags"] = np.asarray(self.flags, dtype=object)
        return pd.DataFrame(columns, columns=list(FIT_COLUMNS))


def join_flags(n: int, flags: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]
               ) -> np.ndarray:
    """Per-TAC flag strings: the names whose mask is True, joined by ``;`` (``""`` if none).

    Parameters
    ----------
    n : int
        Number of TACs.
    flags : mapping or iterable of (name, bool ndarray of shape (n,))
        In the order the names should appear.

    Examples
    --------
    >>> join_flags(3, {"at_bound": np.array([True, False, True]),
    ...                "not_converged": np.array([False, False, True])}).tolist()
    ['at_bound', '', 'at_bound;not_converged']
    """
    out = np.full(n, "", dtype=object)
    pairs = flags.items() if isinstance(flags, Mapping) else flags
    for name, mask in pairs:
        idx = np.flatnonzero(np.asarray(mask, bool))
        if idx.size:
            current = out[idx]
            out[idx] = np.where(current == "", name, current + ";" + name)
    return out


def _per_tac(value: Any, n: int) -> np.ndarray:
    """``value`` as a float array of shape (n,): None -> NaN, a scalar is repeated."""
    if value is None:
        return np.full(n, np.nan)
    arr = np.array(value, dtype=float)
    return np.full(n, float(arr)) if arr.ndim == 0 else arr.reshape(-1)


def _window_option(window: Any) -> list[float | None] | None:
    if window is None:
        return None
    return [None if v is None else float(v) for v in window]


def make_fit(model: str, prep: PreparedInputs, *, bp_nd: Any, fitted: np.ndarray,
             r1: Any = None, k2: Any = None, k2prime: Any = None,
             se: Mapping[str, Any] | None = None,
             flags: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]
             | np.ndarray = (),
             options: Mapping[str, Any] | None = None,
             extra: Mapping[str, Any] | None = None) -> ModelFit:
    """Build the :class:`ModelFit` of one model from its estimates (every model ends here).

    Parameters
    ----------
    model : str
        Model name.
    prep : PreparedInputs
        The checked inputs of the fit (:func:`pipeline.kinetics._inputs.prepare_inputs`):
        target TACs, fitted frames, frame weights and the degenerate-TAC masks.
    bp_nd : array-like of shape (n_tacs,)
        BP_ND estimates (unitless).
    fitted : ndarray of shape (n_frames, n_tacs)
        Model prediction on all frames, Bq/mL; modified in place (NaN outside the fit and
        for degenerate TACs).
    r1, k2, k2prime : array-like of shape (n_tacs,) or float, default=None
        Estimates (unitless, 1/min, 1/min); None where the model does not estimate them
        (NaN). A scalar ``k2prime`` is a fixed value used for every TAC.
    se : mapping, default=None
        Standard errors by estimate name; missing keys of :data:`SE_KEYS` become NaN.
    flags : mapping or iterable of (name, bool ndarray), or ndarray of str
        The model's own flags as masks, or already ``;``-joined per TAC (they are not
        set on degenerate TACs, which get ``nan_input``, ``zero_input`` or
        ``constant_input`` instead).
    options : mapping, default=None
        The model's options as used; :data:`COMMON_OPTIONS` missing from it become None.
    extra : mapping, default=None
        Model-specific per-TAC quantities.

    Returns
    -------
    ModelFit
        With ``extra`` holding ``k2a``, ``dvr``, ``rmse`` and ``nrmse`` for every model.
    """
    n = prep.tacs.shape[1]
    void = prep.degenerate
    any_void = bool(void.any())

    def clean(value: Any) -> np.ndarray:
        arr = _per_tac(value, n)
        if any_void:
            arr[void] = np.nan
        return arr

    bp = clean(bp_nd)
    estimates = {"bp_nd": bp, "r1": clean(r1), "k2": clean(k2), "k2prime": clean(k2prime)}
    se_in = dict(se or {})
    se_out = {key: clean(se_in.get(key)) for key in SE_KEYS}
    keep_frames = prep.used
    rows = row_selector(keep_frames)
    if not keep_frames.all():
        fitted[~keep_frames] = np.nan
    if any_void:
        fitted[:, void] = np.nan
    extra_out = {key: clean(value) for key, value in (extra or {}).items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "k2a" not in extra_out:
            extra_out["k2a"] = estimates["k2"] / (1.0 + bp)
        extra_out["dvr"] = 1.0 + bp
        data = prep.tacs[rows]
        resid = np.subtract(data, fitted[rows])
        rmse = np.sqrt(np.einsum("fn,fn->n", resid, resid) / max(int(keep_frames.sum()), 1))
        level = np.mean(np.abs(data, out=resid), axis=0)
        nrmse = np.where(level > 0, rmse / np.where(level > 0, level, 1.0), np.nan)
    extra_out["rmse"] = clean(rmse)
    extra_out["nrmse"] = clean(nrmse)
    if isinstance(flags, np.ndarray):  # already joined per TAC
        all_flags = np.asarray(flags, dtype=object)
    else:
        pairs = flags.items() if isinstance(flags, Mapping) else flags
        all_flags = join_flags(n, pairs)
    if any_void:  # degenerate TACs get only their input flag
        all_flags = all_flags.copy()
        all_flags[void] = join_flags(n, [("nan_input", prep.nan_tacs),
                                         ("zero_input", prep.zero_tacs),
                                         ("constant_input", prep.constant_tacs)])[void]
    weights = prep.weights[keep_frames]
    opts: dict[str, Any] = {key: None for key in COMMON_OPTIONS}
    opts.update({"model": model,
                 "weights": "given" if np.ptp(weights) > 0 else "uniform",
                 "frame_weights": [float(v) for v in prep.weights]})
    opts.update(dict(options or {}))
    opts["model"] = model
    opts["window"] = _window_option(opts["window"])
    if opts["t_star"] is not None:
        opts["t_star"] = float(opts["t_star"])
    if opts["k2prime"] is not None and not isinstance(opts["k2prime"], str):
        opts["k2prime"] = float(opts["k2prime"])
    return ModelFit(model=model, bp_nd=bp, r1=estimates["r1"], k2=estimates["k2"],
                    k2prime=estimates["k2prime"], se=se_out, fitted=fitted,
                    used=prep.used.copy(), flags=all_flags, options=opts, extra=extra_out)
