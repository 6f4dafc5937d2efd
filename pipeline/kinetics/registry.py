"""The one list of kinetic models: name, fit, options, citation, methods text, capabilities.

Everything that needs to know the models reads :data:`MODELS`: the command line (choices
and help), the parametric maps (which maps a model has), the region-fit step, the report's
methods text and the config checks (:func:`validate_model_options`). Adding a model means
writing its family module (``fit_*``, ``describe``) and one :class:`ModelSpec` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, format_problem
from pipeline.kinetics._options import SHARED, OptionSpec, check_options
from pipeline.kinetics.logan import describe as describe_logan
from pipeline.kinetics.logan import fit_logan_ref
from pipeline.kinetics.mrtm import describe as describe_mrtm
from pipeline.kinetics.mrtm import fit_mrtm, fit_mrtm2
from pipeline.kinetics.ratio import describe as describe_ratio
from pipeline.kinetics.ratio import fit_ratio
from pipeline.kinetics.result import ModelFit
from pipeline.kinetics.srtm import DEFAULT_THETA_RANGE, fit_srtm, fit_srtm_bf
from pipeline.kinetics.srtm import describe as describe_srtm
from pipeline.kinetics.srtm2 import describe as describe_srtm2
from pipeline.kinetics.srtm2 import fit_srtm2
from pipeline.kinetics.weights import WEIGHT_SCHEMES, frame_weights

__all__ = [
    "MODELS",
    "SHARED",
    "ModelSpec",
    "describe_fit",
    "fit",
    "get_model",
    "model_call",
    "models_json_schema",
    "validate_config_models",
    "validate_model_options",
]


@dataclass(frozen=True)
class ModelSpec:
    """Everything petbp knows about one model.

    Attributes
    ----------
    name : str
        Model name (config key, ``--model`` value, ``model-<name>`` in file names).
    fit : callable
        Its fit function ``fit(frames, ref_tac, tacs, **options) -> ModelFit``.
    describe : callable
        ``describe(options) -> str``: the methods sentence, given the fit's options.
    options : tuple of OptionSpec
        Its keyword options with type, default, unit and range.
    title : str
        Short description, for help texts and the methods text when ``describe`` fails.
    citation : str
        Author-year citation of the method.
    citation_key : str
        Key of the full reference in the report's reference list.
    estimates : frozenset of str
        Which of ``bp_nd``, ``r1``, ``k2``, ``k2prime`` it estimates (with standard
        errors where the model gives them); the others are NaN.
    k2prime : {"estimated", "fixed", "optional", "unused"}
        How it treats k2': estimates it, needs a fixed value (estimated by
        ``k2prime_from`` when not given), may use one, or has none.
    k2prime_from : str or None
        The model whose k2 / R1 estimates give k2' when a ``fixed`` one is not given.
    min_frames : int
        Fewest frames it fits (after its window and t*): its parameter count plus one for
        the regressions and SRTM, one for the ratio. The fit refuses fewer and
        ``petbp check`` reports a window that holds fewer.
    integrates_from_injection : bool
        It integrates the reference (and target) from injection, so the scan must start
        at injection (early frames needed).
    voxelwise : bool
        Suitable for parametric maps (one code path for regions and voxels).
    """

    name: str
    fit: Callable[..., ModelFit]
    describe: Callable[[dict[str, Any]], str]
    options: tuple[OptionSpec, ...]
    title: str
    citation: str
    citation_key: str
    estimates: frozenset[str]
    k2prime: str
    min_frames: int
    k2prime_from: str | None = None
    integrates_from_injection: bool = True
    voxelwise: bool = True

    @property
    def option_names(self) -> tuple[str, ...]:
        """Names of its options."""
        return tuple(o.name for o in self.options)

    def takes(self, option: str) -> bool:
        """Whether the model takes ``option``."""
        return option in self.option_names


# options shared by several models ------------------------------------------------------
_WINDOW = OptionSpec("window", "window", None, "minutes",
                     "Fit only frames whose mid-time lies in [start, end]; null = whole scan")
_WEIGHTS = OptionSpec("weights", "choice", "uniform", "",
                      "Frame weights: uniform, duration, or counts (inverse counting-noise "
                      "variance, needs the radionuclide)", choices=WEIGHT_SCHEMES)
_K2PRIME_FIXED = OptionSpec(
    "k2prime", "k2prime", None, "1/min",
    "Reference efflux rate k2', the same for every target; when omitted it is estimated "
    "from high-binding regions (or voxels) by the parent model")
_N_BASIS = OptionSpec("n_basis", "integer", 100, "", "Number of basis functions (k2a grid)",
                      minimum=10)
_MAX_ITER = OptionSpec("max_iter", "integer", 100, "", "Levenberg-Marquardt iterations",
                       minimum=1)


def _t_star(default: float | None, what: str) -> OptionSpec:
    return OptionSpec("t_star", "number", default, "minutes",
                      f"Frames with an earlier mid-time are not fitted ({what})", minimum=0)


def _bounds(keys: tuple[str, ...]) -> OptionSpec:
    return OptionSpec("bounds", "bounds", None, "",
                      f"Box bounds [lower, upper] of {', '.join(keys)} (k2 in 1/min); "
                      "missing ones take the defaults", choices=keys)


_ALL = frozenset({"bp_nd", "r1", "k2", "k2prime"})

#: Model name -> :class:`ModelSpec`, in the order models are listed everywhere.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec(
        "srtm", fit_srtm, describe_srtm,
        (_WINDOW, _WEIGHTS, _bounds(("r1", "k2", "bp_nd")),
         OptionSpec("n_basis", "integer", 100, "", "Basis functions of the starting grid",
                    minimum=10), _MAX_ITER),
        title="simplified reference tissue model, nonlinear least squares",
        citation="Lammertsma & Hume 1996", citation_key="Lammertsma1996",
        estimates=_ALL, k2prime="estimated", min_frames=4),
    ModelSpec(
        "srtm_bf", fit_srtm_bf, describe_srtm,
        (_WINDOW, _WEIGHTS, _N_BASIS,
         OptionSpec("theta_range", "rate_range", DEFAULT_THETA_RANGE, "1/min",
                    "Smallest and largest k2a of the basis functions"),
         OptionSpec("spacing", "choice", "log", "", "Spacing of the basis rates",
                    choices=("log", "linear")),
         OptionSpec("refine", "boolean", True, "",
                    "Refine k2a between grid points (quadratic interpolation)"),
         OptionSpec("compute_se", "boolean", True, "", "Compute standard errors")),
        title="simplified reference tissue model, basis functions",
        citation="Gunn et al. 1997", citation_key="Gunn1997",
        estimates=_ALL, k2prime="estimated", min_frames=4),
    ModelSpec(
        "srtm2", fit_srtm2, describe_srtm2,
        (_K2PRIME_FIXED, _WINDOW, _WEIGHTS, _bounds(("r1", "bp_nd")),
         OptionSpec("n_basis", "integer", 200, "", "Grid size of the starting search",
                    minimum=10), _MAX_ITER),
        title="SRTM with k2' fixed",
        citation="Wu & Carson 2002", citation_key="Wu2002",
        estimates=frozenset({"bp_nd", "r1", "k2"}), k2prime="fixed", k2prime_from="srtm",
        min_frames=3),
    ModelSpec(
        "mrtm", fit_mrtm, describe_mrtm,
        (_WINDOW, _t_star(0.0, "0 suits one-tissue targets"), _WEIGHTS),
        title="multilinear reference tissue model",
        citation="Ichise et al. 2003", citation_key="Ichise2003",
        estimates=_ALL, k2prime="estimated", min_frames=4),
    ModelSpec(
        "mrtm2", fit_mrtm2, describe_mrtm,
        (_K2PRIME_FIXED, _WINDOW, _t_star(0.0, "0 suits one-tissue targets"), _WEIGHTS),
        title="multilinear reference tissue model with k2' fixed",
        citation="Ichise et al. 2003", citation_key="Ichise2003",
        estimates=frozenset({"bp_nd", "r1", "k2"}), k2prime="fixed", k2prime_from="mrtm",
        min_frames=3),
    ModelSpec(
        "logan_ref", fit_logan_ref, describe_logan,
        (_t_star(20.0, "the Logan plot must be linear from t* on"),
         OptionSpec("k2prime", "k2prime", None, "1/min",
                    "Reference efflux rate k2' of the C_R/k2' term; omitted: the term is "
                    "dropped (equilibrium data)"),
         _WINDOW, _WEIGHTS),
        title="Logan reference-tissue graphical analysis (BP_ND = DVR - 1)",
        citation="Logan et al. 1996", citation_key="Logan1996",
        estimates=frozenset({"bp_nd"}), k2prime="optional", min_frames=3),
    ModelSpec(
        "ratio", fit_ratio, describe_ratio,
        (_WINDOW, _t_star(None, "the ratio window runs from t* to the end")),
        title="equilibrium ratio of target to reference activity minus one",
        citation="Carson et al. 1993", citation_key="Carson1993",
        estimates=frozenset({"bp_nd"}), k2prime="unused", min_frames=1,
        integrates_from_injection=False),
)}

#: Keys a :class:`ModelFit`'s options hold besides the model's own (metadata).
_METADATA = ("model", "frame_weights", "weights")


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of model ``name``.

    Parameters
    ----------
    name : str
        A model name.

    Raises
    ------
    ConfigError
        For an unknown name, listing the models.
    """
    spec = MODELS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(format_problem(
            None, f"unknown model {name!r}", f"Choose one of: {', '.join(MODELS)}."))
    return spec


def validate_model_options(model: str, options: Mapping[str, Any] | None,
                           where: str | None = None, *, allow_shared: bool = False) -> None:
    """Check a model's options by name, type and range; one error lists every problem.

    Parameters
    ----------
    model : str
        A model name.
    options : mapping or None
        Option name -> value (e.g. ``config["models"]["srtm"]``).
    where : str, default=None
        Where the options come from, e.g. ``"config/config.yaml, models.srtm"``; each
        problem names ``<where>.<key>``.
    allow_shared : bool, default=False
        Accept ``k2prime: shared`` (the workflow's subject k2').

    Raises
    ------
    ConfigError
        For an unknown model, an option the model does not take (with the closest name),
        or a value of the wrong type or range.

    Examples
    --------
    >>> validate_model_options("srtm", {"t_star": 10}, "models.srtm")
    Traceback (most recent call last):
    ...
    pipeline.errors.ConfigError: models.srtm.t_star: model 'srtm' does not take option(s) t_star.
      srtm takes: window, weights, bounds, n_basis, max_iter.
    """
    if model not in MODELS:
        raise ConfigError(format_problem(where, f"unknown model {model!r}",
                                         f"Choose one of: {', '.join(MODELS)}."))
    problems = check_options(model, MODELS[model].options, dict(options or {}),
                             allow_shared=allow_shared)
    if problems:
        texts = [format_problem(f"{where}.{key}" if where else None, what, fix)
                 for key, what, fix in problems]
        head = f"{len(texts)} problems with the options of {model}:\n" if len(texts) > 1 else ""
        raise ConfigError(head + "\n".join(texts))


def validate_config_models(config: Mapping[str, Any], source: str = "config") -> None:
    """Check every model's options in a config: ``models.<m>`` and ``voxelwise.options``.

    Called by :func:`pipeline.config.validate_config` after the JSON schema, so that an
    option a model does not take (``models.srtm.t_star``) fails when the config is read,
    naming the key, instead of inside every fit job.

    Parameters
    ----------
    config : mapping
        The config (``models`` and ``voxelwise``).
    source : str, default="config"
        The config file, named in each problem.

    Raises
    ------
    ConfigError
        Listing every problem (``<source>, models.srtm.t_star: ...``).
    """
    problems = []
    targets = [(model, options, f"models.{model}")
               for model, options in (config.get("models") or {}).items()]
    voxelwise = config.get("voxelwise") or {}
    if voxelwise.get("enabled", True) and voxelwise.get("model") is not None:
        targets.append((voxelwise["model"], voxelwise.get("options"), "voxelwise.options"))
    for model, options, key in targets:
        try:
            validate_model_options(model, options, f"{source}, {key}", allow_shared=True)
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("\n".join(problems))


def options_json_schema(model: str, *, allow_shared: bool = True) -> dict[str, Any]:
    """JSON schema of one model's options (an object; null means all defaults)."""
    spec = get_model(model)
    return {"type": ["object", "null"], "additionalProperties": False,
            "description": f"Options of {model} ({spec.title}).",
            "properties": {o.name: o.json_schema(allow_shared=allow_shared)
                           for o in spec.options}}


def models_json_schema(*, allow_shared: bool = True) -> dict[str, Any]:
    """JSON schema of ``models:`` (model name -> options), from :data:`MODELS`.

    Parameters
    ----------
    allow_shared : bool, default=True
        Accept ``k2prime: shared``.
    """
    return {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {name: options_json_schema(name, allow_shared=allow_shared)
                           for name in MODELS}}


def fit(model: str, frames: Any, ref_tac: np.ndarray, tacs: np.ndarray, /, *,
        weights: str | np.ndarray | None = "uniform", half_life: float | None = None,
        **options: Any) -> ModelFit:
    """Fit ``model`` to target TACs; ``weights`` may be a scheme name or an array.

    ``fit(result.model, frames, ref_tac, tacs, **result.options)`` redoes a fit: the
    options of a :class:`ModelFit` are accepted as they are (options the model does not
    take must then be None, as recorded).

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
    weights : {"uniform", "duration", "counts", "given"} or ndarray, default="uniform"
        Frame weighting (:mod:`pipeline.kinetics.weights`); ``given`` takes the
        ``frame_weights`` option (as recorded in a fit's options).
    half_life : float, default=None
        Radionuclide half-life, minutes; needed by ``counts`` weights.
    **options
        Model options (:attr:`ModelSpec.options`).

    Raises
    ------
    ConfigError
        For an unknown model or an option it does not take or with a wrong value.
    """
    spec, kwargs, scheme = model_call(model, frames, ref_tac, weights=weights,
                                      half_life=half_life, options=options)
    result = spec.fit(frames, ref_tac, tacs, **kwargs)
    if spec.takes("weights"):
        result.options["weights"] = scheme  # the scheme name, for methods text
    return result


def model_call(model: str, frames: Any, ref_tac: np.ndarray, *,
               weights: str | np.ndarray | None = "uniform", half_life: float | None = None,
               options: Mapping[str, Any] | None = None
               ) -> tuple[ModelSpec, dict[str, Any], str]:
    """Check options and turn a weighting scheme into frame weights, once for many calls.

    :func:`fit` and the parametric maps (one call per chunk of voxels) use it.

    Parameters
    ----------
    model : str
        A model name.
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL (``counts`` weights read it).
    weights : str, ndarray or None, default="uniform"
        A scheme (``uniform``, ``duration``, ``counts``, ``given``) or per-frame weights.
    half_life : float, default=None
        Radionuclide half-life, minutes (``counts`` weights).
    options : mapping, default=None
        The model's options, as configured or as recorded in a fit.

    Returns
    -------
    spec : ModelSpec
    kwargs : dict
        Keyword arguments for ``spec.fit`` (``weights`` an array where the model takes it).
    scheme : str
        The weighting scheme's name (``given`` for an array).
    """
    spec = get_model(model)
    options = dict(options or {})
    given = options.pop("frame_weights", None)
    options.pop("model", None)
    options = {k: v for k, v in options.items() if v is not None or spec.takes(k)}
    validate_model_options(model, options)
    if isinstance(weights, str) and weights == "given":
        if given is None:
            raise ConfigError(format_problem(None, "weights 'given' need frame_weights",
                                             "Give the frame weights or a scheme name."))
        weights = np.asarray(given, float)
    scheme = (weights or "uniform") if isinstance(weights, str) or weights is None \
        else "given"
    if spec.takes("weights"):
        if isinstance(weights, str) or weights is None:
            weights = frame_weights(scheme, frames, ref_tac, half_life=half_life)
        options["weights"] = weights
    elif scheme not in ("uniform", "duration"):
        raise ConfigError(format_problem(
            None, f"model {model!r} does not take frame weights ({scheme})",
            f"{model} weights frames by their duration; leave weights out."))
    return spec, options, scheme


def describe_fit(result: ModelFit | str, options: Mapping[str, Any] | None = None) -> str:
    """The methods sentence of a fit (or of ``model`` with ``options``), with its citation.

    Parameters
    ----------
    result : ModelFit or str
        A fit, or a model name.
    options : mapping, default=None
        The options, when ``result`` is a model name.
    """
    if isinstance(result, ModelFit):
        model, options = result.model, result.options
    else:
        model = result
    spec = get_model(model)
    return spec.describe({**dict(options or {}), "model": model})
