"""The study design from the config: which scans and minutes form each condition, which
pairs of conditions are contrasts, and which models run.

Two designs are expressible (docs/architecture.md, "Where to add"):

* **within-scan windows** (bolus + infusion): a condition is a time window of the scans of
  one task, e.g. ``rejbase`` = task ``rejection``, 5-45 min and ``rejection`` = the same
  scans, 45-90 min;
* **separate scans**: a condition is a whole scan of one task (``window`` omitted), e.g.
  ``baseline`` = task ``baseline`` and ``rejection`` = task ``rejection``.

A contrast pairs a ``baseline`` and a ``condition`` within each participant. With
``control: <other contrast>`` it is a double difference: the % change of this contrast minus
the % change of the control contrast at the same times (the design-based remedy for null
drift in within-scan designs, see :mod:`pipeline.stats.drift`).

Condition and contrast names end up in file names (``_cond-<c>``) and must match
``[A-Za-z0-9]+``. With ``groups`` the participants also fall into groups (patients vs
controls, :mod:`pipeline.groups`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError, format_problem
from pipeline.groups import Groups, parse_groups

__all__ = [
    "Condition",
    "Contrast",
    "Design",
    "Groups",
    "K2primeSettings",
    "k2prime_settings",
    "load_design",
    "model_options",
    "needs_k2prime",
    "region_models",
    "scan_conditions",
]

_NAME = re.compile(r"^[A-Za-z0-9]+$")
_WHERE = "config/config.yaml"


@dataclass(frozen=True)
class Condition:
    """One condition: the scans of ``task`` (and ``session``), within ``window``.

    Attributes
    ----------
    name : str
        Alphanumeric label, used in file names as ``_cond-<name>``.
    task : str
        BIDS task label of the scans that hold this condition.
    session : str or None
        BIDS session label; None matches any session.
    window : (float, float) or None
        Start and end, minutes after injection; None = the whole scan.
    """

    name: str
    task: str
    session: str | None = None
    window: tuple[float, float] | None = None

    def matches(self, task: str | None, session: str | None) -> bool:
        """Whether a scan with these labels holds this condition."""
        return task == self.task and (self.session is None or session == self.session)

    @property
    def window_start(self) -> float | None:
        """Window start, minutes (None for the whole scan)."""
        return None if self.window is None else self.window[0]

    @property
    def window_end(self) -> float | None:
        """Window end, minutes (None for the whole scan)."""
        return None if self.window is None else self.window[1]


@dataclass(frozen=True)
class Contrast:
    """A paired comparison: ``condition`` against ``baseline`` within each participant.

    Attributes
    ----------
    name : str
        Alphanumeric label.
    baseline, condition : str
        Condition names.
    control : str or None
        Name of another contrast whose % change is subtracted (double difference).
    """

    name: str
    baseline: str
    condition: str
    control: str | None = None


@dataclass(frozen=True)
class Design:
    """All conditions and contrasts of a study (see :func:`load_design`)."""

    conditions: dict[str, Condition]
    contrasts: dict[str, Contrast]
    groups: Groups | None = None

    def within_scan(self, contrast: str) -> bool:
        """True when baseline and condition come from the same scans (different windows)."""
        c = self.contrasts[contrast]
        base, cond = self.conditions[c.baseline], self.conditions[c.condition]
        return base.task == cond.task and base.session == cond.session

    def conditions_of(self, contrast: str) -> list[str]:
        """Every condition a contrast needs (its own and its control's)."""
        c = self.contrasts[contrast]
        names = [c.baseline, c.condition]
        if c.control:
            ctl = self.contrasts[c.control]
            names += [ctl.baseline, ctl.condition]
        return names

    @property
    def tasks(self) -> list[str]:
        """Tasks used by any condition, in config order, without repeats."""
        return list(dict.fromkeys(c.task for c in self.conditions.values()))


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(format_problem(
            _WHERE, f"design.{kind}: name {name!r} has characters other than A-Z, a-z, 0-9",
            "Use letters and digits only (the name goes into file names as _cond-<name>)."))


def _window(key: str, value: Any) -> tuple[float, float] | None:
    """Check a ``[start, end]`` window in minutes; ``key`` is its config path."""
    if value is None:
        return None
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    try:
        start, end = (float(v) for v in value) if ok else (None, None)
    except (TypeError, ValueError):
        start = end = None
    if start is None or end is None or not (0 <= start < end):
        raise ConfigError(format_problem(
            _WHERE, f"{key} must be [start, end] in minutes with "
            f"0 <= start < end; got {value!r}",
            "Give e.g. window: [5, 45], or leave it out for the whole scan."))
    return (start, end)


def load_design(config: Mapping[str, Any]) -> Design:
    """Read and check ``config["design"]``.

    Parameters
    ----------
    config : mapping
        The whole validated config (``design.conditions``, ``design.contrasts``, optional
        ``design.groups``).

    Returns
    -------
    Design

    Raises
    ------
    ConfigError
        If a name is not alphanumeric, a window is not ``[start, end]`` minutes, a contrast
        names an unknown condition or control, a control contrast has a control itself, or
        ``groups`` is malformed (:func:`pipeline.groups.parse_groups`).

    Examples
    --------
    >>> d = load_design({"design": {
    ...     "conditions": {"base": {"task": "rest"}, "pain": {"task": "pain"}},
    ...     "contrasts": {"pain": {"baseline": "base", "condition": "pain"}}}})
    >>> d.within_scan("pain")
    False
    """
    section = config.get("design") or {}
    raw_conditions = section.get("conditions") or {}
    raw_contrasts = section.get("contrasts") or {}
    if not raw_conditions or not raw_contrasts:
        raise ConfigError(format_problem(
            _WHERE, "design needs at least one condition and one contrast",
            "See config/README.md, 'Which design you have'."))
    conditions: dict[str, Condition] = {}
    for name, spec in raw_conditions.items():
        _check_name("conditions", name)
        spec = spec or {}
        if not spec.get("task"):
            raise ConfigError(format_problem(
                _WHERE, f"design.conditions.{name} has no task",
                "Name the BIDS task of the scans holding this condition, e.g. task: rejection."))
        session = spec.get("session")
        conditions[name] = Condition(name, str(spec["task"]),
                                     None if session is None else str(session),
                                     _window(f"design.conditions.{name}.window",
                                             spec.get("window")))
    contrasts: dict[str, Contrast] = {}
    for name, spec in raw_contrasts.items():
        _check_name("contrasts", name)
        spec = spec or {}
        for key in ("baseline", "condition"):
            if spec.get(key) not in conditions:
                raise ConfigError(format_problem(
                    _WHERE, f"design.contrasts.{name}.{key} is {spec.get(key)!r}, "
                    "not a condition", f"Choose one of: {', '.join(conditions)}."))
        if spec["baseline"] == spec["condition"]:
            raise ConfigError(format_problem(
                _WHERE, f"design.contrasts.{name} compares condition {spec['baseline']!r} "
                "with itself", "Give two different conditions."))
        contrasts[name] = Contrast(name, spec["baseline"], spec["condition"],
                                   spec.get("control"))
    for c in contrasts.values():
        if c.control is None:
            continue
        if c.control not in contrasts or c.control == c.name:
            raise ConfigError(format_problem(
                _WHERE, f"design.contrasts.{c.name}.control is {c.control!r}, not another "
                "contrast", f"Choose one of: {', '.join(k for k in contrasts if k != c.name)}."))
        if contrasts[c.control].control is not None:
            raise ConfigError(format_problem(
                _WHERE, f"design.contrasts.{c.name}.control {c.control!r} has a control itself",
                "A control contrast must be a plain baseline-vs-condition contrast."))
    return Design(conditions, contrasts, parse_groups(section.get("groups"), _WHERE))


_DESIGNS: dict[str, Design] = {}


def _cached_design(config: Mapping[str, Any]) -> Design:
    """:func:`load_design`, built once per distinct ``design`` section.

    The key is the section's ``repr`` (microseconds for a config-sized mapping), so a changed
    config gets a new design; a bad section is never cached and raises every time.
    """
    key = repr(config.get("design"))
    design = _DESIGNS.get(key)
    if design is None:
        design = load_design(config)
        if len(_DESIGNS) >= 16:
            _DESIGNS.clear()
        _DESIGNS[key] = design
    return design


def scan_conditions(config: Mapping[str, Any], scan: Any) -> list[str]:
    """Names of the conditions a scan contributes to (used by ``petbp check`` and rules).

    Parameters
    ----------
    config : mapping
        The validated config.
    scan : Scan
        Anything with ``task`` and ``ses`` attributes.

    Returns
    -------
    list of str
        Condition names in config order; empty when the scan is not part of the design.
    """
    design = _cached_design(config)
    return [c.name for c in design.conditions.values()
            if c.matches(getattr(scan, "task", None), getattr(scan, "ses", None))]


def region_models(config: Mapping[str, Any]) -> list[str]:
    """The models run on regions (``config["models"]`` keys), primary first.

    Parameters
    ----------
    config : mapping
        The validated config.

    Raises
    ------
    ConfigError
        If ``primary_model`` is not one of ``models`` or a model name is unknown.
    """
    from pipeline.kinetics import MODELS

    models = list((config.get("models") or {}).keys())
    unknown = [m for m in models if m not in MODELS]
    if not models or unknown:
        raise ConfigError(format_problem(
            _WHERE, f"models: unknown or missing model(s) {unknown or '(none)'}",
            f"List one or more of: {', '.join(MODELS)}."))
    primary = config.get("primary_model", models[0])
    if primary not in models:
        raise ConfigError(format_problem(
            _WHERE, f"primary_model {primary!r} is not one of models ({', '.join(models)})",
            "Add it under models or choose a listed model."))
    voxelwise = config.get("voxelwise", {}).get("model")
    if voxelwise is not None and voxelwise not in MODELS:
        raise ConfigError(format_problem(
            _WHERE, f"voxelwise.model {voxelwise!r} is unknown",
            f"Choose one of: {', '.join(MODELS)}."))
    return [primary] + [m for m in models if m != primary]


def model_options(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The options of one model from the config (``models.<model>``), as a new dict.

    Parameters
    ----------
    config : mapping
        The validated config.
    model : str
        A model name; a model not under ``models`` gets ``voxelwise.options``.
    """
    models = config.get("models") or {}
    if model in models:
        return dict(models[model] or {})
    return dict((config.get("voxelwise") or {}).get("options") or {})


def needs_k2prime(options: Mapping[str, Any]) -> bool:
    """Whether a model's options ask for the subject's shared k2' (``k2prime: shared``).

    Parameters
    ----------
    options : mapping
        A model's options.
    """
    return options.get("k2prime") == "shared"


@dataclass(frozen=True)
class K2primeSettings:
    """How a subject's shared k2' is estimated (``config["k2prime"]``).

    Attributes
    ----------
    model : {"srtm", "mrtm"}
        First-pass model that estimates k2' in each region.
    regions : tuple of str
        High-binding regions whose estimates are pooled.
    window : (float, float) or None
        Minutes of each scan used; None = whole scan. Pre-release minutes keep the target
        kinetics stationary, which both first-pass models assume.
    """

    model: str = "srtm"
    regions: tuple[str, ...] = ()
    window: tuple[float, float] | None = None


def k2prime_settings(config: Mapping[str, Any]) -> K2primeSettings:
    """Read ``config["k2prime"]`` (model, regions, window) with checks.

    Parameters
    ----------
    config : mapping
        The validated config (or a mapping whose ``k2prime`` is the section).
    """
    spec = config.get("k2prime") or {}
    model = spec.get("model", "srtm")
    if model not in ("srtm", "mrtm"):
        raise ConfigError(format_problem(
            _WHERE, f"k2prime.model is {model!r}", "Choose srtm or mrtm."))
    regions = tuple(spec.get("regions") or ())
    if not regions:
        raise ConfigError(format_problem(
            _WHERE, "k2prime.regions is empty",
            "List high-binding regions (e.g. thalamus_l, thalamus_r, nacc_l, nacc_r)."))
    return K2primeSettings(model, regions, _window("k2prime.window", spec.get("window")))
