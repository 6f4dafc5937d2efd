"""Reading and writing petbp's tables, sidecars and TAC files, atomically.

Tables are tab-separated with ``n/a`` for missing values (BIDS). Every output is first
written to a temporary file beside its target and renamed into place, so an interrupted
run never leaves a half-written file behind. Every table and map gets a JSON sidecar
that says how it was made (:func:`provenance`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames

if TYPE_CHECKING:  # pandas is imported where tables are read or built (fast import)
    import pandas as pd

__all__ = [
    "CONFIG_USED",
    "TacTable",
    "atomic_path",
    "provenance",
    "read_json",
    "read_table",
    "read_tacs",
    "record_config_used",
    "sidecar_path",
    "write_json",
    "write_table",
    "write_tacs",
]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file keeps the target's suffixes (so ``.nii.gz`` writers still
    compress). On any exception it is removed and the target is left untouched.

    Parameters
    ----------
    target : str or path-like
        The file to write.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name.split('.')[0]}.", suffix=suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files: give outputs the usual umask mode
            tmp.chmod(0o666 & ~_current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a table or image: ``x.tsv`` -> ``x.json``, ``x.nii.gz`` -> ``x.json``.

    Parameters
    ----------
    path : str or path-like
        A table, image or figure.
    """
    path = Path(path)
    name = path.name
    for ext in (".nii.gz", ".nii", ".tsv.gz", ".tsv", ".csv", ".png", ".svg", ".html"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + ".json")
    return path.with_name(name + ".json")


def provenance(**details: Any) -> dict[str, Any]:
    """A sidecar dictionary: ``GeneratedBy`` (petbp version), creation time, and ``details``.

    Parameters
    ----------
    **details
        Further fields of the sidecar (inputs, options, descriptions).
    """
    from pipeline import __version__

    record: dict[str, Any] = {
        "GeneratedBy": [{"Name": "petbp", "Version": __version__}],
        "Created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    record.update(details)
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically; NaN becomes null, arrays lists.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    data : mapping
        JSON-serializable values; numpy scalars and arrays are converted.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON file, with an :class:`InputError` naming the file if it is not valid JSON.

    Parameters
    ----------
    path : str or path-like
        A JSON file.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(format_problem(path, "file not found", "Check the path.")) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(format_problem(
            path, f"not valid JSON ({err})", "Fix the JSON syntax of this file.")) from None


def write_table(path: str | os.PathLike, table: pd.DataFrame,
                sidecar: Mapping[str, Any] | None = None) -> Path:
    """Write a DataFrame as TSV with ``n/a`` for missing values, atomically, plus a sidecar.

    Parameters
    ----------
    path : str or path-like
        The ``.tsv`` file to write.
    table : DataFrame
        The table; its index is not written.
    sidecar : mapping, default=None
        Written to the JSON sidecar (:func:`sidecar_path`) when given.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.10g")
    if sidecar is not None:
        write_json(sidecar_path(path), sidecar)
    return path


#: Sidecar field holding the config values an output was made with (dotted key -> value).
CONFIG_USED = "ConfigUsed"


def record_config_used(paths: Iterable[str | os.PathLike],
                       values: Mapping[str, Any]) -> list[Path]:
    """Add ``ConfigUsed`` (``{dotted config key: value}``) to the sidecars of ``paths``.

    The workflow calls it after each step with the values it declared as Snakemake
    ``params``, so the sidecar says which config made the output and the report can warn
    when it differs from the config it prints. A JSON output records it in itself; outputs
    without a JSON sidecar (figures, folders) are skipped; each file is rewritten atomically.

    Parameters
    ----------
    paths : iterable of str or path-like
        The step's outputs.
    values : mapping
        Dotted config key -> value, the step's ``params.used``.

    Returns
    -------
    list of Path
        The sidecars updated.
    """
    done = []
    for path in paths:
        path = Path(path)
        side = path if path.suffix == ".json" else sidecar_path(path)  # a JSON output itself
        if path.is_dir() or not side.is_file():
            continue
        record = read_json(side)
        record[CONFIG_USED] = dict(values)
        write_json(side, record)
        done.append(side)
    return done


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV written by :func:`write_table` (``n/a`` read as missing).

    Parameters
    ----------
    path : str or path-like
        A ``.tsv`` file.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(format_problem(path, "file not found", "Check the path."))
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(format_problem(
            path, f"not a readable tab-separated table ({err})",
            "Write the table as TSV with a header row.")) from None


class TacTable:
    """Time-activity curves of one scan: frames (minutes) and one column per region (Bq/mL).

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    tacs : DataFrame
        One column per region, one row per frame, Bq/mL (decay-corrected).
    """

    def __init__(self, frames: Frames, tacs: pd.DataFrame):
        if len(tacs) != frames.n_frames:
            raise InputError(format_problem(
                frames.source or None, f"{len(tacs)} TAC rows but {frames.n_frames} frames",
                "Give one row per frame."))
        self.frames = frames
        self.tacs = tacs.reset_index(drop=True)

    @property
    def regions(self) -> list[str]:
        """Region names, in column order."""
        return list(self.tacs.columns)

    def column(self, region: str) -> np.ndarray:
        """One region's TAC as a float array, with an error that lists the regions if absent."""
        if region not in self.tacs.columns:
            raise InputError(format_problem(
                self.frames.source or None, f"no region {region!r} in the TAC table",
                f"Choose one of: {', '.join(self.regions)}."))
        return self.tacs[region].to_numpy(dtype=float)


def read_tacs(path: str | os.PathLike) -> TacTable:
    """Read a TAC table: ``frame_start``, ``frame_end`` (seconds), then regions (Bq/mL).

    Parameters
    ----------
    path : str or path-like
        A ``*_tacs.tsv`` file.
    """
    import pandas as pd

    path = Path(path)
    table = read_table(path)
    missing = [c for c in ("frame_start", "frame_end") if c not in table.columns]
    if missing:
        raise InputError(format_problem(
            path, f"missing column(s) {', '.join(missing)}",
            "A TAC table starts with frame_start and frame_end (seconds), "
            "then one column per region (Bq/mL)."))
    regions = [c for c in table.columns if c not in ("frame_start", "frame_end")]
    if not regions:
        raise InputError(format_problem(path, "no region columns",
                                        "Add one column per region, in Bq/mL."))
    values = table[regions]
    non_numeric = [c for c in regions if not pd.api.types.is_numeric_dtype(values[c])]
    if non_numeric:
        raise InputError(format_problem(
            path, f"non-numeric values in column(s) {', '.join(non_numeric)}",
            "Give activity as numbers (Bq/mL), n/a for missing."))
    frames = Frames.from_seconds(table["frame_start"], table["frame_end"], source=str(path))
    return TacTable(frames, values.astype(float))


def write_tacs(path: str | os.PathLike, tacs: TacTable,
               sidecar: Mapping[str, Any] | None = None) -> Path:
    """Write a TAC table (seconds, Bq/mL) and its sidecar, atomically.

    Parameters
    ----------
    path : str or path-like
        The ``*_tacs.tsv`` file to write.
    tacs : TacTable
        Frames (minutes; written in seconds) and one column per region (Bq/mL).
    sidecar : mapping, default=None
        Written to the JSON sidecar when given.
    """
    import pandas as pd

    table = pd.concat(
        [pd.DataFrame({"frame_start": tacs.frames.start_seconds,
                       "frame_end": tacs.frames.end_seconds}), tacs.tacs], axis=1)
    return write_table(path, table, sidecar)
