"""The reference efflux rate k2': the one place that decides which value a fit uses.

SRTM2 and MRTM2 need a fixed k2' (1/min); Logan may use one. :func:`resolve_k2prime`
decides, for every caller (``petbp fit``, the workflow's region fits and parametric maps):

- ``k2prime: <number>``: that value (``given``);
- ``k2prime: shared``: the subject's k2' from :func:`write_subject_k2prime` (the median
  over the subject's scans of the median first-pass estimate over high-binding regions);
- omitted, for a model that needs a fixed k2': estimated from the data the caller has
  (regions, or the mean TAC of high-binding voxels) by the model's parent
  (:attr:`~pipeline.kinetics.registry.ModelSpec.k2prime_from`: SRTM for SRTM2, MRTM for
  MRTM2) with :func:`estimate_k2prime_from_tacs`;
- omitted, for Logan: the ``C_R / k2'`` term is dropped.

First-pass estimates are medians of ``k2 / R1`` over clean fits (no flag), falling back to
the other first-pass model when the first gives none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.kinetics._options import SHARED
from pipeline.kinetics.mrtm import fit_mrtm
from pipeline.kinetics.registry import get_model, validate_model_options
from pipeline.kinetics.srtm import fit_srtm

__all__ = [
    "FIRST_PASS",
    "estimate_k2prime",
    "estimate_k2prime_from_tacs",
    "k2prime_from_mrtm",
    "k2prime_from_srtm",
    "needs_shared_k2prime",
    "read_shared_k2prime",
    "resolve_k2prime",
    "write_subject_k2prime",
]

log = logging.getLogger(__name__)

#: First-pass models that estimate k2' = k2 / R1, and how the source text names them.
FIRST_PASS: dict[str, str] = {"srtm": "SRTM k2/R1", "mrtm": "MRTM k2'"}


def _median_clean(result, what: str) -> float:
    k2p = np.asarray(result.k2prime, float)
    good = (np.asarray(result.flags) == "") & np.isfinite(k2p) & (k2p > 0)
    if not good.any():
        raise InputError(format_problem(
            None, f"k2' could not be estimated: none of the {k2p.size} {what} fits is clean "
            f"with a positive k2' (flags: {sorted(set(result.flags))}; values: "
            f"{np.array2string(k2p, precision=4)})",
            "Give k2' as a value (1/min) or choose high-binding regions with clean TACs."))
    return float(np.median(k2p[good]))


def k2prime_from_srtm(frames: Any, ref_tac: np.ndarray, tacs: np.ndarray, *,
                      weights: np.ndarray | None = None,
                      window: tuple[float | None, float | None] | None = None) -> float:
    """Median k2' = k2 / R1 (1/min) of SRTM fits to ``tacs`` (best: high-binding regions).

    Fits that are flagged (bound, convergence, bad input) are left out.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    tacs : ndarray of shape (n_frames, n_tacs)
        Target TACs (high-binding regions), Bq/mL.
    weights : ndarray of shape (n_frames,), default=None
        Frame weights; None weighs frames equally.
    window : (float or None, float or None), default=None
        Minutes whose frames are fitted; None fits the whole scan.

    Raises
    ------
    InputError
        If no TAC gives a clean SRTM fit.
    """
    result = fit_srtm(frames, ref_tac, tacs, window=window, weights=weights)
    return _median_clean(result, "SRTM")


def k2prime_from_mrtm(frames: Any, ref_tac: np.ndarray, tacs: np.ndarray, *,
                      t_star: float = 0.0, weights: np.ndarray | None = None,
                      window: tuple[float | None, float | None] | None = None) -> float:
    """Median MRTM estimate of k2' (1/min) over the given target TACs.

    Give high-binding regions: their k2' estimates are the least noisy (Ichise et al. 2003).

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    tacs : ndarray of shape (n_frames, n_tacs)
        Target TACs (high-binding regions), Bq/mL.
    t_star : float, default=0.0
        Minutes; earlier frames are not in the regression.
    weights : ndarray of shape (n_frames,), default=None
        Frame weights; None weighs frames equally.
    window : (float or None, float or None), default=None
        Minutes whose frames are in the regression; None uses the whole scan.

    Raises
    ------
    InputError
        If no TAC gives a clean fit with a positive k2'.
    """
    result = fit_mrtm(frames, ref_tac, tacs, window=window, t_star=t_star, weights=weights)
    return _median_clean(result, "MRTM")


def estimate_k2prime_from_tacs(frames: Any, ref_tac: np.ndarray, tacs: np.ndarray, *,
                               method: str = "srtm",
                               window: tuple[float | None, float | None] | None = None,
                               t_star: float | None = None, weights: np.ndarray | None = None,
                               fallback: bool = True) -> tuple[float, str]:
    """k2' (1/min) from target TACs by a first-pass model, with the other as fallback.

    Parameters
    ----------
    frames, ref_tac, tacs
        Frame timing (minutes), reference and target TACs (Bq/mL), e.g. high-binding
        regions.
    method : {"srtm", "mrtm"}, default="srtm"
        The first-pass model tried first.
    window : (start, end) minutes, default=None
    t_star : float, default=None
        Minutes; used by MRTM only.
    weights : ndarray of shape (n_frames,), default=None
    fallback : bool, default=True
        Try the other first-pass model when ``method`` gives no clean fit.

    Returns
    -------
    k2prime : float
    method_used : str

    Raises
    ------
    InputError
        If no first-pass model gives a clean fit.
    """
    if method not in FIRST_PASS:
        raise ConfigError(format_problem(None, f"k2' first-pass model {method!r} is unknown",
                                         f"Choose one of: {', '.join(FIRST_PASS)}."))
    order = [method] + ([m for m in FIRST_PASS if m != method] if fallback else [])
    problems = []
    for name in order:
        try:
            if name == "srtm":
                return k2prime_from_srtm(frames, ref_tac, tacs, weights=weights,
                                         window=window), name
            return k2prime_from_mrtm(frames, ref_tac, tacs, t_star=t_star or 0.0,
                                     weights=weights, window=window), name
        except InputError as err:
            problems.append(str(err))
    raise InputError("; ".join(problems))


def needs_shared_k2prime(options: Mapping[str, Any] | None) -> bool:
    """Whether options ask for the subject's shared k2' (``k2prime: shared``).

    Parameters
    ----------
    options : mapping or None
        A model's options.
    """
    return (options or {}).get("k2prime") == SHARED


def resolve_k2prime(model: str, options: Mapping[str, Any] | None, *,
                    shared: float | None = None,
                    estimate: Callable[[str], tuple[float, str]] | None = None,
                    ) -> tuple[dict[str, Any], str | None]:
    """The k2' a fit of ``model`` uses, decided by the rules of this module's docstring.

    Parameters
    ----------
    model : str
        The model to fit.
    options : mapping or None
        Its options; ``k2prime`` may be a number, ``"shared"`` or absent.
    shared : float, default=None
        The subject's shared k2' (1/min), needed when the options say ``shared``.
    estimate : callable, default=None
        ``estimate(method) -> (k2prime, source)``: estimates k2' from the caller's data
        with first-pass model ``method``; needed when a fixed k2' is omitted.

    Returns
    -------
    options : dict
        A copy of ``options`` with ``k2prime`` a number (or absent when not used).
    source : str or None
        Where the value came from, for sidecars and methods text (None when unused).

    Raises
    ------
    InputError
        If the shared k2' is asked for but not given, or it cannot be estimated.
    ConfigError
        If ``k2prime`` is given to a model that does not take it.
    """
    spec = get_model(model)
    out = dict(options or {})
    value = out.get("k2prime")
    if value is not None and not spec.takes("k2prime"):
        validate_model_options(model, {"k2prime": value}, allow_shared=True)
    if value == SHARED:
        if shared is None or not np.isfinite(shared):
            raise InputError(format_problem(
                None, f"model {model} asks for the subject's shared k2' but none was given",
                "Estimate it first (write_subject_k2prime; the workflow's fit jobs do) or "
                "give k2prime as a value."))
        out["k2prime"] = float(shared)
        return out, "the subject's shared k2' (median over its scans)"
    if value is not None:
        out["k2prime"] = float(value)
        return out, "given"
    out.pop("k2prime", None)
    if spec.k2prime != "fixed":
        return out, None
    if estimate is None:
        raise ConfigError(format_problem(
            None, f"{model} needs k2prime, a positive rate in 1/min",
            "Give k2prime, or estimate it from high-binding regions."))
    out["k2prime"], source = estimate(spec.k2prime_from or "srtm")
    return out, source


def estimate_k2prime(tac_tables: Sequence[Any], settings: Any, *,
                     reference: str) -> tuple[float, list[float]]:
    """A subject's shared k2' (1/min): median of per-scan estimates over high-binding regions.

    Parameters
    ----------
    tac_tables : sequence of TacTable
        The subject's scans.
    settings : K2primeSettings
        ``model`` (first-pass model tried first), ``regions`` (high-binding regions) and
        ``window`` (minutes, or None) from the config's ``k2prime`` section.
    reference : str
        Reference region column.

    Returns
    -------
    k2prime : float
    per_scan : list of float
        NaN for scans that gave none.
    """
    per_scan, problems = [], []
    for tacs in tac_tables:
        missing = [r for r in settings.regions if r not in tacs.regions]
        if missing:
            raise InputError(format_problem(
                tacs.frames.source or None, f"k2prime.regions {missing} are not in the TAC table",
                f"Choose among: {', '.join(tacs.regions)}."))
        values = tacs.tacs[list(settings.regions)].to_numpy(float)
        try:
            value, _ = estimate_k2prime_from_tacs(tacs.frames, tacs.column(reference), values,
                                                  method=settings.model, window=settings.window)
        except InputError as err:
            problems.append(f"{tacs.frames.source or 'scan'}: {err}")
            value = np.nan
        per_scan.append(value)
    good = [v for v in per_scan if np.isfinite(v)]
    if not good:
        raise InputError(format_problem(
            None, "no scan of this subject gives a usable k2' (" + "; ".join(problems) + ")",
            "Check the subject's TACs and k2prime.regions, or give k2prime as a value."))
    for problem in problems:
        log.warning("k2': %s", problem)
    return float(np.median(good)), per_scan


def write_subject_k2prime(tac_paths: Sequence[str | PathLike], out_path: str | PathLike, *,
                          settings: Any, reference: str) -> Path:
    """Estimate a subject's shared k2' from all its scans and write it as JSON.

    What the workflow's ``fit_regions`` step writes beside each scan
    (``{scan}_k2prime.json``): ``{"k2prime": value, "per_scan": ...}``.

    Parameters
    ----------
    tac_paths : sequence of str or path-like
        The subject's ``*_tacs.tsv`` files (every scan).
    out_path : str or path-like
        The ``sub-<l>_k2prime.json`` to write.
    settings : K2primeSettings
        First-pass model, regions and window (:func:`pipeline.design.k2prime_settings`).
    reference : str
        The reference region's column.
    """
    from pipeline.tables import provenance, read_tacs, write_json

    tables = [read_tacs(p) for p in tac_paths]
    value, per_scan = estimate_k2prime(tables, settings, reference=reference)
    log.info("k2' = %.4f /min (per scan: %s)", value, ", ".join(f"{v:.4f}" for v in per_scan))
    write_json(out_path, provenance(
        Description="Subject's shared reference efflux rate k2' (1/min): median over scans "
        "of the median first-pass estimate over high-binding regions",
        k2prime=value, per_scan=dict(zip(map(str, tac_paths), per_scan, strict=True)),
        model=settings.model, regions=list(settings.regions),
        window=None if settings.window is None else list(settings.window)))
    return Path(out_path)


def read_shared_k2prime(path: str | PathLike | None) -> float | None:
    """The subject's shared k2' (1/min) from a :func:`write_subject_k2prime` file, or None.

    Parameters
    ----------
    path : str, path-like or None
        A k2' JSON file; None gives None.
    """
    if path is None:
        return None
    from pipeline.tables import read_json

    return float(read_json(path)["k2prime"])
