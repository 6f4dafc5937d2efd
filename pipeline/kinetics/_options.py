"""Option schemas of the kinetic models: type, default, unit, range, and their checks (private).

Each model's options are a tuple of :class:`OptionSpec` in
:data:`pipeline.kinetics.registry.MODELS`. :func:`check_options` checks a user's options
against them and names the key of every problem; :meth:`OptionSpec.json_schema` gives the
same rules as a JSON-schema fragment for the config schema.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OptionSpec", "check_options"]

#: The value of ``k2prime`` that asks for the subject's shared k2' (workflow only).
SHARED = "shared"


@dataclass(frozen=True)
class OptionSpec:
    """One keyword option of a model's fit function.

    Attributes
    ----------
    name : str
        Keyword of the fit function (and key under ``models.<model>`` in the config).
    kind : str
        ``number``, ``integer``, ``boolean``, ``choice``, ``window`` (``[start, end]``
        minutes, either may be null), ``rate_range`` (two increasing positive rates),
        ``bounds`` (parameter -> ``[lower, upper]``) or ``k2prime`` (a positive rate,
        or ``"shared"`` in the workflow).
    default : Any
        Default of the fit function; None means "not set".
    unit : str
        Unit of the value (``""`` when unitless).
    description : str
        What it does, for help texts and the config documentation.
    minimum : float, default=None
        Smallest allowed value (``number``/``integer``).
    exclusive_minimum : bool, default=False
        Whether ``minimum`` itself is excluded.
    choices : tuple of str, default=()
        Allowed values (``choice``) or bound names (``bounds``).
    """

    name: str
    kind: str
    default: Any
    unit: str
    description: str
    minimum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()

    def problem(self, value: Any, *, allow_shared: bool = False) -> str | None:
        """What is wrong with ``value`` for this option (None when it is valid)."""
        check = getattr(self, f"_check_{self.kind}")
        return check(value, allow_shared)

    def json_schema(self, *, allow_shared: bool = True) -> dict[str, Any]:
        """The option as a JSON-schema fragment (description with unit and default)."""
        unit = f" ({self.unit})" if self.unit else ""
        text = f"{self.description}{unit}."
        number: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            number["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        schema: dict[str, Any]
        if self.kind == "number":
            schema = number
        elif self.kind == "integer":
            schema = {"type": "integer", **{k: v for k, v in number.items() if k != "type"}}
        elif self.kind == "boolean":
            schema = {"type": "boolean"}
        elif self.kind == "choice":
            schema = {"type": "string", "enum": list(self.choices)}
        elif self.kind == "window":
            schema = {"type": ["array", "null"], "minItems": 2, "maxItems": 2,
                      "items": {"type": ["number", "null"], "minimum": 0}}
        elif self.kind == "rate_range":
            schema = {"type": "array", "minItems": 2, "maxItems": 2,
                      "items": {"type": "number", "exclusiveMinimum": 0}}
        elif self.kind == "bounds":
            pair = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}
            schema = {"type": "object", "additionalProperties": False,
                      "properties": {key: pair for key in self.choices}}
        else:  # k2prime
            positive = {"type": "number", "exclusiveMinimum": 0}
            schema = {"oneOf": [positive, {"type": "string", "enum": [SHARED]}]} \
                if allow_shared else positive
        schema["description"] = text
        if self.default is not None:
            schema["default"] = list(self.default) if isinstance(self.default, tuple) \
                else self.default
        return schema

    # one checker per kind: return a problem text or None ------------------------------

    def _check_number(self, value: Any, _shared: bool) -> str | None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"must be a number{self._unit_text()}; got {value!r}"
        if value != value:  # NaN
            return f"must be a number{self._unit_text()}; got NaN"
        return self._range_problem(value)

    def _check_integer(self, value: Any, _shared: bool) -> str | None:
        whole = isinstance(value, numbers.Integral) or (
            isinstance(value, numbers.Real) and float(value).is_integer())
        if isinstance(value, bool) or not whole:
            return f"must be a whole number; got {value!r}"
        return self._range_problem(value)

    def _check_boolean(self, value: Any, _shared: bool) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false; got {value!r}"

    def _check_choice(self, value: Any, _shared: bool) -> str | None:
        if value in self.choices:
            return None
        return f"must be one of {', '.join(self.choices)}; got {value!r}"

    def _check_window(self, value: Any, _shared: bool) -> str | None:
        if value is None:
            return None
        if not _pair(value) or any(v is not None and (isinstance(v, bool) or not isinstance(
                v, numbers.Real) or v < 0) for v in value):
            return f"must be [start, end] in minutes (>= 0, null = scan start/end); got {value!r}"
        start, end = value
        if start is not None and end is not None and not end > start:
            return f"end must be after start; got {list(value)!r}"
        return None

    def _check_rate_range(self, value: Any, _shared: bool) -> str | None:
        if not _pair(value) or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                                   for v in value) or not 0 < value[0] < value[1]:
            return f"must be [low, high] rates in 1/min with 0 < low < high; got {value!r}"
        return None

    def _check_bounds(self, value: Any, _shared: bool) -> str | None:
        if not isinstance(value, Mapping):
            return f"must map {', '.join(self.choices)} to [lower, upper]; got {value!r}"
        unknown = [k for k in value if k not in self.choices]
        if unknown:
            return f"has unknown parameter(s) {', '.join(map(str, unknown))}; " \
                   f"bound only {', '.join(self.choices)}"
        for key, pair in value.items():
            if not _pair(pair) or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                                      for v in pair) or not pair[0] < pair[1]:
                return f"bound of {key} must be [lower, upper] with lower < upper; got {pair!r}"
        return None

    def _check_k2prime(self, value: Any, allow_shared: bool) -> str | None:
        if value == SHARED and allow_shared:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            shared = ' or "shared" (the subject\'s k2\')' if allow_shared else ""
            return f"must be a positive rate in 1/min{shared}; got {value!r}"
        return None

    def _unit_text(self) -> str:
        return f" ({self.unit})" if self.unit else ""

    def _range_problem(self, value: float) -> str | None:
        if self.minimum is None:
            return None
        if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
            sign = ">" if self.exclusive_minimum else ">="
            return f"must be {sign} {self.minimum:g}{self._unit_text()}; got {value!r}"
        return None


def _pair(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2


def check_options(model: str, specs: Sequence[OptionSpec], options: Mapping[str, Any], *,
                  allow_shared: bool = False) -> list[tuple[str, str, str]]:
    """Every problem of ``options`` for a model: ``(key, what, fix)`` triples.

    Parameters
    ----------
    model : str
        Model name, for messages.
    specs : sequence of OptionSpec
        The model's options.
    options : mapping
        The options to check.
    allow_shared : bool, default=False
        Whether ``k2prime: shared`` is allowed (the workflow's subject k2').
    """
    by_name = {spec.name: spec for spec in specs}
    problems = []
    for key, value in options.items():
        spec = by_name.get(key)
        if spec is None:
            close = difflib.get_close_matches(str(key), list(by_name), n=1)
            hint = f"Did you mean {close[0]}? " if close else ""
            takes = ", ".join(by_name) or "no options"
            problems.append((str(key), f"model {model!r} does not take option(s) {key}",
                             f"{hint}{model} takes: {takes}."))
            continue
        if value is None and spec.default is None:  # "not set", as the fit records it
            continue
        what = spec.problem(value, allow_shared=allow_shared)
        if what:
            problems.append((str(key), f"{key} {what}", f"{spec.description}."))
    return problems
