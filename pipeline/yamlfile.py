"""Reading petbp's YAML files (configs, region configs, schemas) strictly and fast.

YAML itself lets a mapping repeat a key and keeps the last value without a word: a config
edited by hand (a key pasted twice, an old value left below a new one) would run with
whichever came last. petbp's reader refuses that, naming both lines, and uses libyaml's
parser when PyYAML has it (the same objects as ``yaml.safe_load``, about 9x faster: every
job that builds region masks reads the region config and its schema).
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError, format_problem

__all__ = ["DuplicateKeyError", "check_yaml_files", "duplicate_key_error", "load_yaml"]

#: PyYAML's safe loader, built on libyaml when PyYAML has it.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping names the same key twice.

    Attributes
    ----------
    key : str
        The repeated key.
    lines : tuple of int
        1-based lines of its first and its repeated occurrence.
    """

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark) -> None:
        self.key = key
        self.lines = (first.line + 1, again.line + 1)
        super().__init__(None, None, f"the key {key!r} appears twice in one mapping "
                         f"(lines {self.lines[0]} and {self.lines[1]})", again)


class _UniqueKeyLoader(_SAFE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not key_node.start_mark:
                raise DuplicateKeyError(str(key), first, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(source: Any) -> Any:
    """``yaml.safe_load`` that refuses repeated keys, with libyaml's parser when available.

    Parameters
    ----------
    source : str or text stream
        YAML text or an open file.

    Raises
    ------
    DuplicateKeyError
        A mapping repeats a key (a :class:`yaml.YAMLError`).
    """
    return yaml.load(source, Loader=_UniqueKeyLoader)


def duplicate_key_error(path: str | PathLike, err: DuplicateKeyError) -> ConfigError:
    """The one error petbp gives for a repeated key: the file, the key, both lines, the fix.

    Parameters
    ----------
    path : path-like
        The YAML file read.
    err : DuplicateKeyError
        What :func:`load_yaml` raised.
    """
    return ConfigError(format_problem(
        path, f"the key '{err.key}' appears twice in one section (lines {err.lines[0]} and "
        f"{err.lines[1]}); YAML would silently keep the second",
        "Delete one of the two (keep the one you mean)."))


def check_yaml_files(paths: Iterable[str | PathLike]) -> None:
    """Refuse config files whose mappings repeat a key (Snakemake's reader keeps the last).

    Parameters
    ----------
    paths : iterable of path-like
        The config files Snakemake read (``workflow.configfiles``); missing ones are skipped
        (Snakemake reports those itself).

    Raises
    ------
    ConfigError
        Naming the file, the key and both lines.
    """
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        try:
            load_yaml(path.read_text(encoding="utf-8"))
        except DuplicateKeyError as err:
            raise duplicate_key_error(path, err) from None
        except yaml.YAMLError:
            continue  # Snakemake has parsed it already; its own errors are clearer
