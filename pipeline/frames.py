"""Frame timing, radioactive decay and activity units.

Files and BIDS sidecars give times in seconds; everything returned here is in
minutes, the unit of :mod:`pipeline.kinetics`. Activity is converted to Bq/mL.
This module is the single place where those conversions happen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = [
    "HALF_LIFE_MIN",
    "UNIT_TO_BQ_PER_ML",
    "Frames",
    "activity_scale",
    "decay_correct",
    "decay_correction_factors",
    "decay_factor",
    "decay_uncorrect",
    "half_life_minutes",
    "normalize_radionuclide",
]

#: Physical half-lives in minutes (NNDC / Laboratoire National Henri Becquerel values).
HALF_LIFE_MIN: dict[str, float] = {
    "C11": 20.364,
    "O15": 2.0372,
    "N13": 9.965,
    "F18": 109.771,
    "Ga68": 67.71,
    "Cu64": 762.0,
    "Rb82": 1.2575,
    "Zr89": 4704.0,
    "I124": 6013.44,
    "Br76": 972.0,
}

#: Factor that turns a value in the given unit into Bq/mL (keys are normalized, lower case).
UNIT_TO_BQ_PER_ML: dict[str, float] = {
    "bq/ml": 1.0,
    "kbq/ml": 1e3,
    "mbq/ml": 1e6,
    "nci/ml": 37.0,
    "uci/ml": 37e3,
    "mci/ml": 37e6,
    "bq/l": 1e-3,
}

_NUCLIDE_PATTERN = re.compile(
    r"^\[?\s*(\d+)\s*-?\s*([A-Za-z]{1,2})\s*\]?$|^\[?([A-Za-z]{1,2})\s*-?\s*(\d+)\]?$"
)


@dataclass(frozen=True)
class Frames:
    """Start and end of each frame, in minutes after injection.

    Use :meth:`from_bids` to build it from sidecar values in seconds; the constructor
    checks that frames are finite, have positive durations, are sorted and do not overlap
    (gaps between frames are allowed).

    Parameters
    ----------
    start : ndarray of shape (n_frames,)
        Frame start times, minutes.
    end : ndarray of shape (n_frames,)
        Frame end times, minutes.
    source : str, default=""
        Where the timing came from (a sidecar path), used in error messages.
    """

    start: np.ndarray
    end: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        start = np.asarray(self.start, dtype=float).reshape(-1)
        end = np.asarray(self.end, dtype=float).reshape(-1)
        where = self.source or None
        if start.shape != end.shape:
            raise InputError(format_problem(
                where, f"{start.size} frame starts but {end.size} frame ends",
                "Give one start and one end (or duration) per frame."))
        if start.size == 0:
            raise InputError(format_problem(where, "no frames", "Give at least one frame."))
        if not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
            raise InputError(format_problem(
                where, "frame times contain NaN or infinite values",
                "Give finite frame start times and durations in seconds."))
        duration = end - start
        if np.any(duration <= 0):
            bad = int(np.flatnonzero(duration <= 0)[0])
            raise InputError(format_problem(
                where, f"frame {bad + 1} has a duration of {duration[bad] * 60:g} s "
                "(durations must be positive)",
                "Give positive FrameDuration values, in seconds."))
        if start[0] < 0:
            raise InputError(format_problem(
                where, f"the first frame starts at {start[0] * 60:g} s, before injection",
                "FrameTimesStart are seconds after injection (TimeZero) and must be >= 0."))
        overlap = start[1:] < end[:-1] - 1e-6
        if np.any(overlap):
            bad = int(np.flatnonzero(overlap)[0])
            kind = "starts before the previous frame" if start[bad + 1] < start[bad] else \
                "starts before the previous frame ends"
            raise InputError(format_problem(
                where, f"frame {bad + 2} {kind} (frames are unsorted or overlap: "
                f"start {start[bad + 1] * 60:g} s, previous frame {start[bad] * 60:g}-"
                f"{end[bad] * 60:g} s)",
                "Sort the frames by start time and make sure none overlap."))
        start.setflags(write=False)
        end.setflags(write=False)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def from_bids(
        cls,
        frame_times_start: Sequence[float],
        frame_duration: Sequence[float],
        source: str | PathLike = "",
    ) -> Frames:
        """Build frames from BIDS ``FrameTimesStart`` and ``FrameDuration`` (seconds)."""
        start_s = np.asarray(frame_times_start, dtype=float).reshape(-1)
        dur_s = np.asarray(frame_duration, dtype=float).reshape(-1)
        if start_s.size != dur_s.size:
            raise InputError(format_problem(
                str(source) or None,
                f"FrameTimesStart has {start_s.size} values but FrameDuration has {dur_s.size}",
                "Give one start time and one duration per frame, in seconds."))
        return cls(start_s / 60.0, (start_s + dur_s) / 60.0, str(source))

    @classmethod
    def from_seconds(cls, start_s: Sequence[float], end_s: Sequence[float],
                     source: str | PathLike = "") -> Frames:
        """Build frames from start and end times in seconds (TAC table columns)."""
        return cls(np.asarray(start_s, float) / 60.0, np.asarray(end_s, float) / 60.0,
                   str(source))

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.start.size)

    def __len__(self) -> int:
        return self.n_frames

    @property
    def duration(self) -> np.ndarray:
        """Frame durations, minutes."""
        return self.end - self.start

    @property
    def mid(self) -> np.ndarray:
        """Frame mid-times, minutes."""
        return 0.5 * (self.start + self.end)

    @property
    def start_seconds(self) -> np.ndarray:
        """Frame starts, seconds (for files)."""
        return self.start * 60.0

    @property
    def end_seconds(self) -> np.ndarray:
        """Frame ends, seconds (for files)."""
        return self.end * 60.0

    def in_window(self, start: float | None = None, end: float | None = None) -> np.ndarray:
        """Frames whose mid-time lies in ``[start, end]`` (minutes); None means open.

        Returns
        -------
        ndarray of bool, shape (n_frames,)
        """
        mid = self.mid
        mask = np.ones(self.n_frames, dtype=bool)
        if start is not None:
            mask &= mid >= start
        if end is not None:
            mask &= mid <= end
        return mask

    def subset(self, mask: np.ndarray) -> Frames:
        """The frames selected by a boolean mask or index array."""
        return Frames(self.start[mask], self.end[mask], self.source)


def normalize_radionuclide(name: str) -> str:
    """Turn a radionuclide name as found in sidecars into petbp's key (e.g. ``C11``).

    Accepts ``C11``, ``11C``, ``[11C]``, ``C-11``, ``c11`` and the like.

    Parameters
    ----------
    name : str
        The sidecar's ``TracerRadionuclide``.

    Raises
    ------
    InputError
        If the name is not one of :data:`HALF_LIFE_MIN`.
    """
    text = str(name).strip()
    match = _NUCLIDE_PATTERN.match(text)
    if match:
        number = match.group(1) or match.group(4)
        symbol = (match.group(2) or match.group(3)).capitalize()
        key = f"{symbol}{number}"
        if key in HALF_LIFE_MIN:
            return key
    known = ", ".join(sorted(HALF_LIFE_MIN))
    raise InputError(format_problem(
        None, f"unknown radionuclide {name!r}",
        f"Set TracerRadionuclide to one of {known} (or give the half-life)."))


def half_life_minutes(radionuclide: str) -> float:
    """Half-life in minutes of a radionuclide named as in BIDS (``C11``, ``[11C]`` ...).

    Parameters
    ----------
    radionuclide : str
        A radionuclide name as in sidecars (``C11``, ``[11C]``, ``C-11`` ...).
    """
    return HALF_LIFE_MIN[normalize_radionuclide(radionuclide)]


def decay_factor(t: np.ndarray | float, half_life: float) -> np.ndarray | float:
    """Fraction of activity left after ``t`` minutes: ``exp(-ln2 t / half_life)``.

    Parameters
    ----------
    t : float or ndarray
        Minutes after the reference time.
    half_life : float
        Minutes.

    Examples
    --------
    >>> round(float(decay_factor(20.364, HALF_LIFE_MIN["C11"])), 12)
    0.5
    """
    return np.exp(-math.log(2.0) * np.asarray(t, dtype=float) / half_life)


def decay_correction_factors(frames: Frames, half_life: float) -> np.ndarray:
    """Per-frame factors that turn frame-averaged uncorrected activity into decay-corrected.

    For a frame from t0 to t1 (minutes) with decay constant lambda = ln2/half_life,
    the factor is ``lambda (t1 - t0) / (exp(-lambda t0) - exp(-lambda t1))``: activity
    measured as the mean over the frame is referred back to injection time.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes after injection.
    half_life : float
        Minutes.

    Returns
    -------
    ndarray of shape (n_frames,)
        Unitless factors, >= 1.
    """
    lam = math.log(2.0) / half_life
    t0, t1 = frames.start, frames.end
    return lam * (t1 - t0) / (np.exp(-lam * t0) - np.exp(-lam * t1))


def decay_correct(data: np.ndarray, frames: Frames, half_life: float) -> np.ndarray:
    """Decay-correct activity; the frame axis is the last axis of ``data``.

    Returns a new array; ``data`` is not modified.

    Parameters
    ----------
    data : ndarray
        Frame-averaged activity, frames along the last axis (any unit).
    frames : Frames
        Frame timing, minutes after injection.
    half_life : float
        Minutes.
    """
    return np.asarray(data) * decay_correction_factors(frames, half_life)


def decay_uncorrect(data: np.ndarray, frames: Frames, half_life: float) -> np.ndarray:
    """Undo decay correction (frame axis last); the inverse of :func:`decay_correct`.

    Parameters
    ----------
    data : ndarray
        Decay-corrected frame-averaged activity, frames along the last axis.
    frames : Frames
        Frame timing, minutes after injection.
    half_life : float
        Minutes.
    """
    return np.asarray(data) / decay_correction_factors(frames, half_life)


def activity_scale(units: str, source: str | PathLike | None = None) -> float:
    """Factor that converts activity in ``units`` (a BIDS ``Units`` value) to Bq/mL.

    ``cc`` is read as mL and ``µ``/``u`` as micro. Raises :class:`InputError` for
    anything else, naming ``source``.

    Parameters
    ----------
    units : str
        The sidecar's ``Units`` (e.g. ``kBq/mL``).
    source : str or path-like, default=None
        Named in the error.

    Examples
    --------
    >>> activity_scale("kBq/mL")
    1000.0
    >>> activity_scale("nCi/cc")
    37.0
    """
    key = str(units).strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")
    key = key.replace("/cc", "/ml").replace("/cm3", "/ml").replace("/cm^3", "/ml")
    if key in UNIT_TO_BQ_PER_ML:
        return UNIT_TO_BQ_PER_ML[key]
    raise InputError(format_problem(
        source, f"Units is {units!r}, which petbp cannot convert to Bq/mL",
        "Set Units to one of Bq/mL, kBq/mL, MBq/mL, nCi/mL, uCi/mL, mCi/mL."))
