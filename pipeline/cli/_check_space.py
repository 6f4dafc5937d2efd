"""``petbp check``: each scan's detected space and the preprocessing it will get (private).

The decision is the workflow's (:func:`pipeline.preprocess.plan.plan_scan` under the
config's ``preprocessing``), made on the image data ``petbp check`` has already loaded;
nothing here imports ANTs, so the check runs without the preprocessing extra and says when
a scan will need it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["SpacePlans"]


class SpacePlans:
    """Collects each scan's space and plan, and makes the summary lines.

    Parameters
    ----------
    mode : {"auto", "on", "off"}
        The config's ``preprocessing``.
    attempt : callable
        Runs a check and records its error as a problem (``_Problems.attempt`` of
        :mod:`pipeline.cli.check`): a refused scan (scanner space with ``off``, or no T1w)
        becomes one problem naming its file and the fix.
    """

    def __init__(self, mode: str, attempt: Callable[[Callable[[], Any]], Any]) -> None:
        self.mode, self.attempt = mode, attempt
        self.lines: list[str] = []
        self.kinds: Counter = Counter()
        self.preprocessed: set[str] = set()

    def add(self, scan: Any, image: Any) -> bool | None:
        """Plan one scan from its loaded image (``PetImage``); True if it will be
        preprocessed, None if it is refused."""
        from pipeline.preprocess.plan import image_space, plan_scan

        def plan():
            mean = image.data.mean(axis=3)
            evidence = image_space(scan.image_path, mean=mean)
            return plan_scan(scan.image_path, self.mode, evidence=evidence)

        result = self.attempt(plan)
        if result is None:
            self.kinds["refused"] += 1
            return None
        self.kinds["preprocessed" if result.preprocess else "analysed as is"] += 1
        if result.preprocess:
            self.preprocessed.add(scan.stem)
        self.lines.append(f"space of {scan.stem}: {result.summary}")
        return result.preprocess

    def summary(self, read_data: bool) -> list[str]:
        """The lines for the summary (a note when the data were not read)."""
        if not read_data:
            return [f"space: not detected (--headers-only reads no image data); "
                    f"preprocessing: {self.mode}"]
        head = f"space (preprocessing: {self.mode}): " + ", ".join(
            f"{n} {kind}" for kind, n in sorted(self.kinds.items()))
        if self.preprocessed:
            import importlib.util

            if importlib.util.find_spec("ants") is None:
                from pipeline.preprocess.antsio import INSTALL_HINT

                head += f" (antspyx is not installed: {INSTALL_HINT})"
        return [head, *self.lines]
