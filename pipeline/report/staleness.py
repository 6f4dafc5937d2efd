"""Outputs made with other config values than the config the report prints.

Every workflow step records the config values it read in its outputs' JSON sidecars
(``ConfigUsed``: dotted key -> value, :func:`pipeline.tables.record_config_used`). The
report compares them with its config and warns, naming the files and keys, when a table
was made with different values (e.g. the config was edited and only part of the workflow
was rerun, or ``petbp report`` was given another config).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import config_value
from pipeline.report.blocks import details, error_block, table_block
from pipeline.tables import CONFIG_USED

__all__ = ["config_mismatches", "configuration_blocks"]

_SIDECARS = ("group/*.json", "sub-*/*.json", "sub-*/pet/*.json", "sub-*/ses-*/pet/*.json")


def _same(recorded: Any, current: Any) -> bool:
    """Equal as JSON values (tuples and lists alike, 5 == 5.0)."""
    return json.loads(json.dumps(recorded, default=str)) == \
        json.loads(json.dumps(current, default=str))


def config_mismatches(output_dir: str | Path, config: Mapping[str, Any]) -> pd.DataFrame:
    """Every (file, config key) whose recorded value differs from ``config``.

    Parameters
    ----------
    output_dir : path-like
        The workflow's output folder.
    config : mapping
        The configuration the report prints.

    Returns
    -------
    DataFrame
        Columns ``file`` (relative to ``output_dir``), ``key``, ``recorded``, ``current``
        (values as JSON text); empty when every output agrees.
    """
    output_dir = Path(output_dir)
    rows = []
    for pattern in _SIDECARS:
        for sidecar in sorted(output_dir.glob(pattern)):
            try:
                recorded = json.loads(sidecar.read_text()).get(CONFIG_USED)
            except (OSError, ValueError, AttributeError):
                continue
            if not isinstance(recorded, Mapping):
                continue
            for key, value in recorded.items():
                current = config_value(config, key)
                if not _same(value, current):
                    rows.append({"file": str(sidecar.relative_to(output_dir)), "key": key,
                                 "recorded": json.dumps(value, default=str),
                                 "current": json.dumps(current, default=str)})
    return pd.DataFrame(rows, columns=["file", "key", "recorded", "current"])


def configuration_blocks(output_dir: str | Path, config: Mapping[str, Any] | None
                         ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The report's warning (empty when none) and its "Configuration used" block.

    The warning names how many outputs were made with other config values and which keys;
    the configuration block lists them under the config it prints.

    Parameters
    ----------
    output_dir : str or Path
        The workflow's output folder (its sidecars' ``ConfigUsed``).
    config : mapping or None
        The config the report prints; None (or empty) gives no warning and a note instead.
    """
    import yaml

    if not config:
        return [], details("Configuration used", [{
            "kind": "pre", "text": "(no configuration was given to the report)"}])
    stale = config_mismatches(output_dir, config)
    inner = [{"kind": "pre", "text": yaml.safe_dump(dict(config), sort_keys=False,
                                                     default_flow_style=False)}]
    if stale.empty:
        return [], details("Configuration used", inner)
    keys = ", ".join(dict.fromkeys(stale["key"]))
    warning = error_block(
        "Outputs made with a different configuration",
        f"{stale['file'].nunique()} output(s) were made with config values other than the "
        f"configuration shown under 'Configuration used' (keys: {keys}). Rerun the workflow "
        "with this config (Snakemake reruns exactly the affected steps) before reading the "
        "results.")
    inner.append(table_block(stale, "Outputs whose recorded config values differ",
                             table_id="stale-config"))
    return [warning], details("Configuration used", inner, badges=["outputs differ"],
                              open_=True)
