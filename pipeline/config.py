"""Loading and validating ``config/config.yaml`` against ``workflow/schemas/config.schema.yaml``.

Both files (and the region config and its schema) are package data: the one copy of each is
in ``pipeline/data/`` and read with :mod:`importlib.resources`, so an installed wheel has
them; in a git clone ``config/*.yaml`` and ``workflow/schemas/*.yaml`` are symbolic links to
them, where users and Snakemake's ``configfile:`` find them.

The same checks run in the workflow (the ``Snakefile`` calls :func:`validate_config`) and in
``petbp check``. Missing keys are filled with the schema's defaults, recursively; every
problem is reported at once, naming the file, the key path (``demo.subjects``), what is
allowed and the value received, and a misspelt key gets the closest valid name suggested.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Iterator, Mapping
from importlib.resources import files
from os import PathLike
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError, format_problem
from pipeline.yamlfile import DuplicateKeyError, duplicate_key_error, load_yaml

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_REGIONS_VALUE",
    "SCHEMA_DIR",
    "apply_overrides",
    "config_value",
    "config_values",
    "data_file",
    "effective_config",
    "load_config",
    "load_schema",
    "load_yaml",
    "resolve_region_config",
    "validate_config",
]


def data_file(name: str) -> Path:
    """A file of petbp's package data (``pipeline/data/<name>``), as a path.

    Wheels install unpacked, so the resource is a real file; the path is what Snakemake
    and the YAML readers need.

    Parameters
    ----------
    name : str
        File name inside ``pipeline/data/`` (e.g. ``"regions.yaml"``).
    """
    return Path(str(files("pipeline").joinpath("data", name)))


#: Folder of the JSON schemas (YAML): package data (``workflow/schemas`` links here).
SCHEMA_DIR = data_file("config.schema.yaml").parent
#: The shipped configuration (defaults = the demo study; ``config/config.yaml`` links here).
DEFAULT_CONFIG = data_file("config.yaml")
#: The config's default ``regions`` value: the shipped region config, relative to a clone.
DEFAULT_REGIONS_VALUE = "config/regions.yaml"


def load_schema(name: str = "config") -> dict:
    """Read the package's ``<name>.schema.yaml`` (``workflow/schemas/`` in a clone).

    Parameters
    ----------
    name : str, default="config"
        ``"config"`` or ``"regions"``.
    """
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise ConfigError(format_problem(
            path, "schema file not found: the petbp installation is incomplete",
            "Reinstall petbp (pip install --force-reinstall petbp, or pip install . "
            "from a clone)."))
    with open(path, encoding="utf-8") as handle:
        return load_yaml(handle)


def resolve_region_config(value: str | PathLike | None) -> Path:
    """The region config file a config's ``regions`` value names.

    The default ``config/regions.yaml`` is relative to a clone; where it does not exist
    (petbp installed from a wheel and run elsewhere) the shipped copy is used.

    Parameters
    ----------
    value : str, path-like or None
        The config's ``regions`` value; None means the shipped default.
    """
    if value is None:
        return data_file("regions.yaml")
    path = Path(value)
    if not path.exists() and str(value) == DEFAULT_REGIONS_VALUE:
        return data_file("regions.yaml")
    return path


_MISSING = object()


def config_value(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """The value at a dotted key (``statistics.null_drift.kbol``); ``default`` if absent.

    Parameters
    ----------
    config : mapping
        The validated config.
    key : str
        A dotted key.
    default : Any, default=None
        Returned when the key is absent.
    """
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def config_values(config: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``{dotted key: value}`` for ``keys`` (copies; None where a key is absent).

    This is what a workflow step declares as its Snakemake ``params`` (an edit of any of
    these values reruns the step) and records in its outputs' sidecars (``ConfigUsed``).

    Parameters
    ----------
    config : mapping
        The validated config.
    keys : iterable of str
        Dotted keys (``"statistics.alpha"``, ``"design.conditions.rejbase"``).
    """
    return {key: copy.deepcopy(config_value(config, key)) for key in keys}


def _model_uses_shared_k2prime(options: Any) -> bool:
    return isinstance(options, Mapping) and options.get("k2prime") == "shared"


def effective_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the sections that cannot affect this run's results.

    Dropped: ``demo`` when ``bids_dir`` is a real dataset; ``k2prime`` when no model uses
    the shared k2'; the voxelwise settings other than ``enabled`` when it is false. This is
    what the report prints under "Configuration used" (and what makes it rerun).

    Parameters
    ----------
    config : mapping
        The validated config (not modified: a deep copy is trimmed).
    """
    config = copy.deepcopy(dict(config))
    if config.get("bids_dir") != "demo":
        config.pop("demo", None)
    voxelwise = config.get("voxelwise") or {}
    enabled = voxelwise.get("enabled", True)
    if not enabled:
        config["voxelwise"] = {"enabled": False}
    options = [*(config.get("models") or {}).values()]
    if enabled:
        options.append(voxelwise.get("options"))
    if not any(_model_uses_shared_k2prime(o) for o in options):
        config.pop("k2prime", None)
    return config


def _defaulting_validator(schema: Mapping) -> Any:
    """A validator of the schema's draft that fills ``default``s before checking properties."""
    import jsonschema

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


def _message(error: Any, source: str) -> str:
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


def _iter_messages(errors: Iterator[Any], source: str) -> list[str]:
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
    _normalize_switches(config)
    validator = _defaulting_validator(schema)
    messages = _iter_messages(validator.iter_errors(config), str(source))
    messages += _correlation_group_problems(config, str(source))
    if messages:
        head = f"{len(messages)} problems in the configuration:\n" if len(messages) > 1 else ""
        raise ConfigError(head + "\n".join(messages))
    from pipeline.kinetics.config_checks import validate_config_models  # per-model option schemas
    validate_config_models(config, str(source))
    return config


def _normalize_switches(config: dict) -> None:
    """YAML 1.1 reads an unquoted ``on``/``off`` as true/false: ``preprocessing: off`` (in a
    file or ``--config preprocessing=off``) means the word, so booleans become it."""
    value = config.get("preprocessing")
    if isinstance(value, bool):
        config["preprocessing"] = "on" if value else "off"


def _correlation_group_problems(config: Mapping, source: str) -> list[str]:
    """A correlation's ``group`` must be a level of ``design.groups`` (checked at parse time,
    not when the correlation step runs)."""
    design = config.get("design") if isinstance(config.get("design"), Mapping) else {}
    groups = design.get("groups") if isinstance(design.get("groups"), Mapping) else None
    levels = [str(x) for x in (groups or {}).get("levels") or []]
    stats = config.get("statistics") if isinstance(config.get("statistics"), Mapping) else {}
    problems = []
    for i, spec in enumerate(stats.get("correlations") or []):
        group = spec.get("group") if isinstance(spec, Mapping) else None
        if group in (None, "all"):
            continue
        where = f"{source}, statistics.correlations[{i}].group"
        if groups is None:
            problems.append(format_problem(where, f"group {group!r} but design.groups is not set",
                                           "Set design.groups or drop the group key."))
        elif str(group) not in levels:
            problems.append(format_problem(where, f"{group!r} is not a level of design.groups "
                                           f"({', '.join(levels)})", "Use one of the levels."))
    return problems


def apply_overrides(config: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Set ``overrides`` in ``config`` (in place); dotted keys (``demo.subjects``) go deep.

    Parameters
    ----------
    config : dict
        The config to change.
    overrides : mapping or None
        Dotted key -> value; None changes nothing.
    """
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
        A YAML config file; None reads the shipped ``config/config.yaml`` (package data).
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
                config = load_yaml(handle)
        except DuplicateKeyError as err:
            raise duplicate_key_error(source, err) from None
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
