"""The study report: one self-contained ``report.html`` plus ``methods.md`` and figure files.

:func:`write_report` is the step the workflow's ``report`` rule and ``petbp report`` call.
The layout is data (``spec.yaml``); figures are matplotlib/nilearn, embedded as data URIs.
"""

from pipeline.report.build import load_spec, render_report, write_report
from pipeline.report.collect import StudyResults, collect_results
from pipeline.report.methods import methods_markdown, methods_paragraphs

__all__ = [
    "StudyResults",
    "collect_results",
    "load_spec",
    "methods_markdown",
    "methods_paragraphs",
    "render_report",
    "write_report",
]
