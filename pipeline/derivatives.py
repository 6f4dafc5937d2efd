"""``output_dir/dataset_description.json``: the workflow's outputs as a BIDS-derivatives
dataset (BIDS 1.9, "Derived dataset and pipeline description").
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from pipeline.tables import write_json

__all__ = [
    "BIDS_IGNORE",
    "BIDS_VERSION",
    "config_checksum",
    "write_bidsignore",
    "write_dataset_description",
]

#: The BIDS version the outputs follow.
BIDS_VERSION = "1.9.0"


#: Outputs that are not BIDS files, for ``.bidsignore`` (validators skip them).
BIDS_IGNORE = (".petbp/", "group/", "report.html", "methods.md", "*_k2prime.json",
               "*_regions.png")


def write_bidsignore(path: str | PathLike) -> Path:
    """Write ``.bidsignore`` listing :data:`BIDS_IGNORE`, atomically.

    Parameters
    ----------
    path : path-like
        The ``.bidsignore`` file to write (at the top of ``output_dir``).
    """
    from pipeline.tables import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(BIDS_IGNORE) + "\n")
    return Path(path)


def config_checksum(config: Mapping[str, Any]) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys): equal configs, equal sums.

    Parameters
    ----------
    config : mapping
        The config (any JSON-serializable mapping; other values are written as text).
    """
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_dataset_description(path: str | PathLike, *, sources: Sequence[Mapping[str, str]],
                              command: Sequence[str] | str,
                              config: Mapping[str, Any]) -> Path:
    """Write ``dataset_description.json`` of a derivatives dataset made by petbp.

    Parameters
    ----------
    path : path-like
        ``<output_dir>/dataset_description.json``.
    sources : sequence of mapping
        ``SourceDatasets`` entries, e.g. ``{"URL": "file:///data/study"}``.
    command : sequence of str or str
        The command line of the run (recorded in ``GeneratedBy``).
    config : mapping
        The validated config of the run; its checksum is recorded (:func:`config_checksum`).
    """
    from pipeline import __version__

    if not isinstance(command, str):
        command = shlex.join(str(part) for part in command)
    description = {
        "Name": "petbp derivatives: regional and voxelwise BP_ND, group statistics, report",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "petbp",
            "Version": __version__,
            "Description": "PET receptor binding potentials with reference-tissue models",
            "Command": command,
            "ConfigSHA256": config_checksum(config),
        }],
        "SourceDatasets": [dict(s) for s in sources],
    }
    return write_json(path, description)
