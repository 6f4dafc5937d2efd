"""Do the groups share one scan protocol? Kbol and frame schedules from the PET sidecars.

Within-scan window designs have a null drift (the % change without release) that depends on
the protocol: the bolus-to-infusion ratio Kbol and the frame schedule. When every group was
scanned with the same protocol the drift is the same in each group and cancels in the
between-group difference of % changes; when the protocols differ it does not, and the
difference mixes release with drift. :func:`compare_protocols` says which case applies.

Kbol (minutes) = bolus radioactivity / infusion rate, from the BIDS-PET sidecar fields
(:func:`pipeline.protocol.read_protocol`); when the sidecar does not give the infusion's
duration it is taken to last from ``InfusionStart`` to the end of the last frame.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError

__all__ = ["KBOL_TOLERANCE", "compare_protocols", "kbol_minutes", "scan_protocols"]

log = logging.getLogger(__name__)

#: Relative difference of the groups' median Kbol above which the protocols count as
#: different (a 10 % change of Kbol moves the simulated carfentanil drift by ~0.3 points).
KBOL_TOLERANCE = 0.10

def kbol_minutes(sidecar: Mapping[str, Any], scan_end_s: float | None = None) -> float:
    """Bolus-to-infusion ratio of one scan, minutes (NaN for a bolus-only scan or when the
    sidecar lacks the fields): :func:`pipeline.protocol.read_protocol`.

    Parameters
    ----------
    sidecar : mapping
        The scan's ``_pet.json`` fields (BIDS inheritance applied).
    scan_end_s : float, default=None
        End of the last frame, seconds after injection (the infusion's end when the sidecar
        does not give its duration).
    """
    from pipeline.protocol import read_protocol

    try:
        protocol = read_protocol(sidecar, scan_end=None if scan_end_s is None
                                 else float(scan_end_s) / 60.0)
    except InputError:
        return np.nan
    return float(protocol.kbol) if protocol.mode == "bolus-infusion" else np.nan


def scan_protocols(scans: Sequence[Any]) -> pd.DataFrame:
    """One row per scan: ``participant_id``, ``task``, ``mode`` (ModeOfAdministration),
    ``kbol_min`` and ``frames`` (the frame schedule as text, seconds).

    Parameters
    ----------
    scans : sequence of :class:`pipeline.bids.Scan`
    """
    rows = []
    for scan in scans:
        ends = scan.frames.end_seconds
        starts = scan.frames.start_seconds
        rows.append({
            "participant_id": scan.participant_id, "task": scan.task,
            "mode": str(scan.sidecar.get("ModeOfAdministration", "n/a")),
            "kbol_min": kbol_minutes(scan.sidecar, float(ends[-1])),
            "frames": " ".join(f"{s:g}-{e:g}" for s, e in zip(np.round(starts, 1),
                                                              np.round(ends, 1),
                                                              strict=True)),
        })
    return pd.DataFrame(rows, columns=["participant_id", "task", "mode", "kbol_min", "frames"])


def compare_protocols(protocols: pd.DataFrame, labels: pd.Series,
                      tolerance: float = KBOL_TOLERANCE) -> dict[str, Any]:
    """Compare the groups' protocols (administration mode, Kbol, frame schedule).

    Parameters
    ----------
    protocols : DataFrame
        From :func:`scan_protocols`.
    labels : Series
        Group level per ``participant_id`` (:func:`pipeline.groups.group_labels`).
    tolerance : float, default=KBOL_TOLERANCE
        Relative difference of median Kbol counted as a different protocol.

    Returns
    -------
    dict
        ``same_protocol`` (bool), ``warnings`` (list of str, logged too) and per level
        ``groups[level]``: ``modes``, ``kbol_median``, ``kbol_range`` (minutes) and
        ``frame_schedules`` (number of distinct schedules) and ``frames`` (the most common).
    """
    table = protocols.merge(labels.rename("group").reset_index(), on="participant_id")
    summary: dict[str, dict[str, Any]] = {}
    for level in labels.unique():
        rows = table[table["group"] == level]
        kbol = rows["kbol_min"].dropna()
        counts = rows["frames"].value_counts()
        summary[str(level)] = {
            "modes": sorted(rows["mode"].unique().tolist()),
            "kbol_median": float(kbol.median()) if len(kbol) else None,
            "kbol_range": [float(kbol.min()), float(kbol.max())] if len(kbol) else None,
            "frame_schedules": int(counts.size),
            "frames": str(counts.index[0]) if counts.size else None,
        }
    warnings: list[str] = []
    levels = list(summary)
    reference = summary[levels[0]] if levels else {}
    for level in levels[1:]:
        other = summary[level]
        if other["modes"] != reference["modes"]:
            warnings.append(f"modes of administration differ: {levels[0]} "
                            f"{reference['modes']}, {level} {other['modes']}")
        ka, kb = reference["kbol_median"], other["kbol_median"]
        if ka is not None and kb is not None and abs(ka - kb) > tolerance * max(ka, kb):
            warnings.append(f"Kbol differs: median {ka:.1f} min ({levels[0]}) vs {kb:.1f} "
                            f"min ({level})")
        elif (ka is None) != (kb is None):
            warnings.append(f"Kbol is known for only one of {levels[0]} and {level}")
        if other["frames"] != reference["frames"]:
            warnings.append(f"the most common frame schedules of {levels[0]} and {level} "
                            "differ")
    for text in warnings:
        log.warning("groups: scan protocols differ between groups (%s): within-scan drift "
                    "need not cancel in the group differences", text)
    return {"same_protocol": not warnings, "warnings": warnings, "groups": summary}
