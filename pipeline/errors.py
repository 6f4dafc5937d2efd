"""Exceptions petbp raises for problems in user input.

A :class:`PetbpError` is a message for a person: it names the file (or config key),
says what is wrong and what was found, and ends with the fix. The command line prints
it without a traceback and exits with status 1; any other exception is a bug.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["ConfigError", "InputError", "PetbpError", "format_problem"]


class PetbpError(Exception):
    """Base class of every error caused by user input or configuration."""


class InputError(PetbpError, ValueError):
    """A data file (image, sidecar, table) cannot be used as it is."""


class ConfigError(PetbpError, ValueError):
    """A configuration file or option is invalid."""


def format_problem(where: str | PathLike | None, what: str, fix: str | None = None) -> str:
    """Build a message in petbp's shape: ``where: what.`` then the fix on its own line.

    Parameters
    ----------
    where : str or path-like or None
        The file, or ``file, key``, the problem is in. None when no file is involved.
    what : str
        What is wrong and what was found.
    fix : str, default=None
        What the user should do about it.

    Returns
    -------
    str
        The message.

    Examples
    --------
    >>> format_problem("sub-01_pet.json", "FrameDuration is missing", "Add it, in seconds.")
    'sub-01_pet.json: FrameDuration is missing.\\n  Add it, in seconds.'
    """
    text = what.rstrip(".") + "."
    if where is not None and str(where):
        text = f"{where}: {text}"
    if fix:
        text += "\n  " + fix.strip()
    return text
