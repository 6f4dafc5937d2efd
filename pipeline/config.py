"""Loading and validating ``config/config.yaml`` against ``workflow/schemas/config.schema.yaml``.

The same checks run in the workflow (the ``Snakefile`` calls :func:`validate_config`) and in
``petbp check``. Missing keys are filled with the schema's defaults, recursively; every
problem is reported at once, naming the file, the key path (``demo.subjects``), what is
allowed and the value received, and a misspelt key gets the closest valid name suggested.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import pipeline
from pipeline.errors import ConfigError, format_problem

__all__ = [
    "DEFAULT_CONFIG",
    "SCHEMA_DIR",
    "apply_overrides",
    "load_config",
    "load_schema",
    "validate_config",
]

#: Folder of the workflow's JSON schemas (YAML), in the source tree.
SCHEMA_DIR = Path(pipeline.__file__).resolve().parents[1] / "workflow" / "schemas"
#: The shipped configuration (defaults = the demo study).
DEFAULT_CONFIG = Path(pipeline.__file__).resolve().parents[1] / "config" / "config.yaml"


def load_schema(name: str = "config") -> dict:
    """Read ``workflow/schemas/<name>.schema.yaml``."""
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise ConfigError(format_problem(
            path, "schema file not found (petbp must run from its source tree)",
            "Install petbp with `pip install -e .` from a git clone."))
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _defaulting_validator(schema: Mapping) -> jsonschema.protocols.Validator:
    """A validator of the schema's draft that fills ``default``s before checking properties."""
    base = jsonschema.validators.validator_for(schema)
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema_)

    extended = jsonschema.validators.extend(base, {"properties": properties})
    return extended(schema)


def _allowed(schema: Mapping) -> str:
    """What a schema node accepts, in words: type, enum, range, pattern."""
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(repr(v) for v in schema["enum"]))
    elif "type" in schema:
        kind = schema["type"]
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        parts.append(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"between {schema.get('minimum', '-inf')} and {schema.get('maximum', 'inf')}")
    for key, word in (("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        if key in schema:
            parts.append(f"{word} {schema[key]}")
    if "pattern" in schema:
        parts.append("letters and digits only" if "A-Za-z0-9" in schema["pattern"]
                     else f"matching {schema['pattern']}")
    text = ", ".join(parts) or "valid"
    if schema.get("description"):
        text += f" ({' '.join(str(schema['description']).split())})"
    return text


def _message(error: jsonschema.ValidationError, source: str) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    where = f"{source}, {path}" if path else source
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extras = sorted(set(error.instance) - set(allowed))
        texts = []
        for extra in extras:
            close = difflib.get_close_matches(str(extra), allowed, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            texts.append(f"unknown key {extra!r}{hint}")
        return format_problem(where, "; ".join(texts),
                              f"Allowed keys here: {', '.join(allowed)}.")
    if error.validator == "required":
        return format_problem(where, error.message, "Add the key.")
    value = error.instance
    hint = ""
    if isinstance(value, int) and not isinstance(value, bool) and \
            error.validator == "type" and "string" in str(error.validator_value):
        hint = f" Write it in quotes ('{value:02d}' if it had a leading zero)."
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return format_problem(where, f"must be {_allowed(error.schema)}; got {shown}",
                          ("Change the value." + hint).strip())


def _iter_messages(errors: Iterator[jsonschema.ValidationError], source: str) -> list[str]:
    ordered = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    return [_message(e, source) for e in ordered]


def validate_config(config: dict, schema: Mapping | None = None,
                    source: str | PathLike = "config") -> dict:
    """Fill defaults into ``config`` (in place) and check it against the schema.

    Parameters
    ----------
    config : dict
        The configuration, e.g. Snakemake's ``config``.
    schema : mapping, default=None
        The schema; None reads ``workflow/schemas/config.schema.yaml``.
    source : str or path-like, default="config"
        Named in error messages (the config file).

    Returns
    -------
    dict
        ``config``, with defaults filled.

    Raises
    ------
    ConfigError
        Listing every problem, one block each.
    """
    schema = load_schema() if schema is None else schema
    validator = _defaulting_validator(schema)
    messages = _iter_messages(validator.iter_errors(config), str(source))
    if messages:
        head = f"{len(messages)} problems in the configuration:\n" if len(messages) > 1 else ""
        raise ConfigError(head + "\n".join(messages))
    from pipeline.kinetics.registry import validate_config_models  # per-model option schemas
    validate_config_models(config, str(source))
    return config


def apply_overrides(config: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Set ``overrides`` in ``config`` (in place); dotted keys (``demo.subjects``) go deep."""
    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        node = config
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return config


def load_config(path: str | PathLike | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a config file, apply overrides, fill defaults and validate.

    Parameters
    ----------
    path : path-like, default=None
        A YAML config file; None reads the shipped ``config/config.yaml`` (or uses only
        the schema defaults when petbp is not run from its source tree).
    overrides : mapping, default=None
        Values that replace the file's, as with ``snakemake --config key=value``; dotted
        keys address nested options.

    Returns
    -------
    dict
        The complete configuration.

    Raises
    ------
    ConfigError
        If the file is missing or not YAML, or any key is unknown or has a wrong value.
    """
    source = Path(path) if path is not None else DEFAULT_CONFIG
    if path is None and not source.is_file():
        config: Any = {}
    else:
        if not source.is_file():
            raise ConfigError(format_problem(source, "config file not found",
                                             "Check the path (see config/config.yaml)."))
        try:
            with open(source, encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(format_problem(
                source, f"not valid YAML ({' '.join(str(err).split())})",
                "Fix the YAML syntax (indent with spaces, 'key: value').")) from err
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise ConfigError(format_problem(
                source, f"holds a YAML {type(config).__name__}, not a mapping of keys",
                "Write the config as 'key: value' lines."))
    apply_overrides(config, overrides)
    return validate_config(config, source=source)
