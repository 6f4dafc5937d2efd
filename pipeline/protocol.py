"""The tracer administration protocol of a scan, read from its BIDS-PET sidecar.

A bolus-plus-infusion study gives part of the dose as a bolus and the rest at a constant
rate. Its usual summary is Kbol (Carson et al. 1993): the bolus expressed in minutes of
infusion, ``Kbol = bolus activity / infusion rate``. BIDS-PET describes the protocol with
``ModeOfAdministration`` (``bolus``, ``infusion`` or ``bolus-infusion``),
``InjectedRadioactivity`` (the whole dose: bolus plus infusion), ``InfusionRadioactivity``
(the infused part), ``InfusionStart`` (seconds after TimeZero), ``InfusionSpeed`` with
``InfusionSpeedUnits`` (e.g. mL/s) and ``InjectedVolume`` (mL). The infusion lasts
``infused volume / speed``, with the infused volume taken as the infused share of
``InjectedVolume`` (one solution for bolus and infusion).

Everything here is in minutes and MBq; sidecar values are converted once, on reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = ["MODES", "Protocol", "read_protocol"]

#: BIDS ``ModeOfAdministration`` values petbp knows.
MODES = ("bolus", "infusion", "bolus-infusion")

#: Activity units -> MBq.
_ACTIVITY_TO_MBQ = {"mbq": 1.0, "gbq": 1000.0, "kbq": 1e-3, "bq": 1e-6, "mci": 37.0,
                    "uci": 0.037, "µci": 0.037, "ci": 37000.0}
#: Volume units -> mL.
_VOLUME_TO_ML = {"ml": 1.0, "l": 1000.0, "ul": 1e-3, "µl": 1e-3, "cc": 1.0}
#: Time units (denominator of a speed) -> minutes.
_TIME_TO_MIN = {"s": 1.0 / 60.0, "sec": 1.0 / 60.0, "min": 1.0, "h": 60.0, "hr": 60.0}


@dataclass(frozen=True)
class Protocol:
    """How the tracer was given, in minutes and MBq.

    Attributes
    ----------
    mode : str
        ``bolus``, ``infusion``, ``bolus-infusion`` or ``unknown``.
    injected_mbq : float
        Whole dose (bolus plus infusion), MBq; NaN if not given.
    bolus_mbq, infusion_mbq : float
        Bolus and infused activity, MBq; NaN if unknown.
    infusion_start : float
        Minutes after TimeZero (NaN without an infusion).
    infusion_duration : float
        Minutes; NaN if it cannot be derived (no volume or speed).
    kbol : float
        Bolus in minutes of infusion, ``bolus_mbq / (infusion_mbq / infusion_duration)``;
        0 for a pure infusion, inf for a pure bolus, NaN if unknown.
    notes : tuple of str
        What could not be derived and why (shown by ``petbp check``).
    """

    mode: str
    injected_mbq: float = np.nan
    bolus_mbq: float = np.nan
    infusion_mbq: float = np.nan
    infusion_start: float = np.nan
    infusion_duration: float = np.nan
    kbol: float = np.nan
    notes: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """True when Kbol could be derived (or the scan is a pure bolus or infusion)."""
        return not np.isnan(self.kbol)

    def describe(self) -> str:
        """One line for ``petbp check`` and the methods text."""
        if self.mode == "bolus":
            return "bolus"
        if self.mode == "infusion":
            return "constant infusion (Kbol 0 min)"
        if self.mode == "bolus-infusion":
            if self.known:
                return (f"bolus plus infusion, Kbol {self.kbol:.1f} min (bolus "
                        f"{self.bolus_mbq:.1f} MBq, infusion {self.infusion_mbq:.1f} MBq over "
                        f"{self.infusion_duration:.1f} min)")
            return "bolus plus infusion, Kbol unknown (" + "; ".join(self.notes) + ")"
        return "administration not given in the sidecar"


def _number(sidecar: Mapping[str, Any], key: str, where: str | None) -> float:
    value = sidecar.get(key)
    if value is None:
        return np.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(format_problem(where, f"{key} must be a number; got {value!r}",
                                        f"Give {key} as a number (see the BIDS-PET spec)."))
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise InputError(format_problem(where, f"{key} must be a finite number >= 0; "
                                        f"got {value!r}", f"Correct {key}."))
    return value


def _scale(sidecar: Mapping[str, Any], key: str, table: Mapping[str, float], default: str | None,
           where: str | None) -> float:
    """Conversion factor for the units named in ``key`` (the default when absent)."""
    unit = sidecar.get(key, default)
    if unit is None:
        return np.nan
    factor = table.get(str(unit).strip().lower())
    if factor is None:
        raise InputError(format_problem(
            where, f"{key} {unit!r} is not a unit petbp knows",
            f"Use one of: {', '.join(sorted(table))}."))
    return factor


def _infusion_speed(sidecar: Mapping[str, Any], where: str | None) -> tuple[float, str]:
    """``(speed, kind)``: mL/min (``volume``) or MBq/min (``activity``); NaN if absent."""
    speed = _number(sidecar, "InfusionSpeed", where)
    if np.isnan(speed):
        return np.nan, "volume"
    unit = str(sidecar.get("InfusionSpeedUnits", "mL/s")).replace(" ", "").lower()
    amount, _, time = unit.partition("/")
    if time in _TIME_TO_MIN and amount in _VOLUME_TO_ML:
        return speed * _VOLUME_TO_ML[amount] / _TIME_TO_MIN[time], "volume"
    if time in _TIME_TO_MIN and amount in _ACTIVITY_TO_MBQ:
        return speed * _ACTIVITY_TO_MBQ[amount] / _TIME_TO_MIN[time], "activity"
    raise InputError(format_problem(
        where, f"InfusionSpeedUnits {sidecar.get('InfusionSpeedUnits')!r} is not a volume "
        "or an activity per time", "Give it as e.g. mL/s, mL/min or MBq/min."))


def read_protocol(sidecar: Mapping[str, Any], source: str | PathLike | None = None, *,
                  scan_end: float | None = None) -> Protocol:
    """The administration protocol described by a BIDS-PET sidecar.

    Parameters
    ----------
    sidecar : mapping
        The scan's sidecar fields (after BIDS inheritance).
    source : path-like, default=None
        The sidecar's path, for messages.
    scan_end : float, default=None
        End of the last frame, minutes after injection: when the sidecar gives no way to
        derive the infusion's duration, it is taken to last until then (with a note).

    Returns
    -------
    Protocol
        Minutes and MBq. Missing fields give NaN values and a note, never an error: the
        protocol is informative unless a method needs it.

    Raises
    ------
    InputError
        If a field holds something other than a non-negative number, a unit is unknown, or
        the infused activity exceeds the whole dose.

    Examples
    --------
    >>> p = read_protocol({"ModeOfAdministration": "bolus-infusion",
    ...                    "InjectedRadioactivity": 400, "InjectedRadioactivityUnits": "MBq",
    ...                    "InfusionRadioactivity": 200, "InjectedVolume": 40,
    ...                    "InfusionSpeed": 20 / 5400, "InfusionSpeedUnits": "mL/s",
    ...                    "InfusionStart": 0})
    >>> round(p.kbol, 1), round(p.infusion_duration, 1)
    (90.0, 90.0)
    """
    where = None if source is None else str(source)
    raw_mode = sidecar.get("ModeOfAdministration")
    mode = str(raw_mode).strip().lower() if raw_mode is not None else "unknown"
    if mode not in MODES:
        notes = ("ModeOfAdministration missing",) if raw_mode is None else (
            f"ModeOfAdministration {raw_mode!r} is not one of {', '.join(MODES)}",)
        return Protocol(mode="unknown", notes=notes)
    activity = _scale(sidecar, "InjectedRadioactivityUnits", _ACTIVITY_TO_MBQ, "MBq", where)
    injected = _number(sidecar, "InjectedRadioactivity", where) * activity
    if mode == "bolus":
        return Protocol(mode=mode, injected_mbq=injected, bolus_mbq=injected, infusion_mbq=0.0,
                        kbol=np.inf)
    infused = _number(sidecar, "InfusionRadioactivity", where) * activity
    if mode == "infusion" and np.isnan(infused):
        infused = injected
    if np.isfinite(infused) and np.isfinite(injected) and infused > injected * (1 + 1e-6):
        raise InputError(format_problem(
            where, f"InfusionRadioactivity ({infused:g} MBq) exceeds InjectedRadioactivity "
            f"({injected:g} MBq)", "InjectedRadioactivity is the whole dose (bolus plus "
            "infusion); correct one of them."))
    start_s = _number(sidecar, "InfusionStart", where)
    notes: list[str] = []
    bolus = injected - infused if mode == "bolus-infusion" else 0.0
    volume = _number(sidecar, "InjectedVolume", where) * _scale(
        sidecar, "InjectedVolumeUnits", _VOLUME_TO_ML, "mL", where)
    speed, kind = _infusion_speed(sidecar, where)
    duration = np.nan
    start = 0.0 if np.isnan(start_s) else start_s / 60.0
    if np.isnan(infused) or np.isnan(injected) or injected <= 0:
        notes.append("InjectedRadioactivity or InfusionRadioactivity missing")
    elif kind == "activity" and speed > 0:
        duration = infused / speed
    elif np.isfinite(volume) and np.isfinite(speed) and speed > 0:
        duration = volume * (infused / injected) / speed
    elif scan_end is not None and scan_end > start:
        duration = scan_end - start
        notes.append("infusion duration not given (InjectedVolume and InfusionSpeed): "
                     "taken to last until the end of the scan")
    else:
        notes.append("InjectedVolume or InfusionSpeed missing: infusion duration unknown")
    if mode == "infusion":
        kbol = 0.0
    elif np.isfinite(duration) and duration > 0 and infused > 0:
        kbol = bolus / (infused / duration)
    else:
        kbol = np.nan
    return Protocol(mode=mode, injected_mbq=injected, bolus_mbq=bolus, infusion_mbq=infused,
                    infusion_start=start_s / 60.0, infusion_duration=duration, kbol=kbol,
                    notes=tuple(notes))
