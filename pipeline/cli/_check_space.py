"""``petbp check``: each scan's detected space and the preprocessing it will get (private).

The decision is the workflow's (:func:`pipeline.preprocess.plan.plan_scan` under the
config's ``preprocessing``); nothing here imports ANTs, so the check runs without the
preprocessing extra and says when a scan will need it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["space_plans"]


def space_plans(scans: Sequence[Any], mode: str, attempt: Callable[[Callable[[], Any]], Any],
                read_data: bool) -> tuple[list[str], set[str]]:
    """Summary lines of every scan's space and plan, and the stems of scans to preprocess.

    Parameters
    ----------
    scans : sequence of Scan
        The scans found.
    mode : {"auto", "on", "off"}
        The config's ``preprocessing``.
    attempt : callable
        Runs a check and records its error as a problem (``_Problems.attempt`` of
        :mod:`pipeline.cli.check`): a refused scan (scanner space with ``off``, or no T1w)
        becomes one problem naming its file and the fix.
    read_data : bool
        False (``--headers-only``): the space is not detected (it needs the image data).

    Returns
    -------
    lines : list of str
    preprocessed : set of str
        Stems of the scans that will be preprocessed (their field of view is not checked
        against the MNI brain: they are in scanner space).
    """
    if not read_data:
        return [f"space: not detected (--headers-only); preprocessing: {mode}"], set()
    from pipeline.preprocess.plan import plan_scan

    lines, preprocessed, kinds = [], set(), Counter()
    for scan in scans:
        plan = attempt(lambda scan=scan: plan_scan(scan.image_path, mode))
        if plan is None:
            kinds["refused"] += 1
            continue
        kinds["preprocessed" if plan.preprocess else "analysed as is"] += 1
        if plan.preprocess:
            preprocessed.add(scan.stem)
        lines.append(f"space of {scan.stem}: {plan.summary}")
    head = f"space (preprocessing: {mode}): " + ", ".join(
        f"{n} {kind}" for kind, n in sorted(kinds.items()))
    if preprocessed:
        import importlib.util

        if importlib.util.find_spec("ants") is None:
            from pipeline.preprocess.antsio import INSTALL_HINT

            head += f" (antspyx is not installed: {INSTALL_HINT})"
    return [head, *lines], preprocessed
