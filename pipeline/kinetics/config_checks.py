"""Model options at the config level: every model's options in a config, and the JSON schema.

:func:`validate_config_models` runs when the config is read, so that an option a model does not
take fails at once, naming the key; :func:`models_json_schema` gives the config schema's
``models`` section from the registry (:data:`pipeline.kinetics.registry.MODELS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.kinetics.registry import MODELS, get_model, validate_model_options

__all__ = ["models_json_schema", "options_json_schema", "validate_config_models"]


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
    """JSON schema of one model's options (an object; null means all defaults).

    Parameters
    ----------
    model : str
        A model name.
    allow_shared : bool, default=True
        Accept ``k2prime: shared``.

    Returns
    -------
    dict
        The JSON schema.
    """
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
