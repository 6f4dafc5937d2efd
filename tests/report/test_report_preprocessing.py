"""The report on preprocessed (scanner-space) scans: motion summaries, and scans excluded for
head motion shown as excluded (with the reason, in the summary, their QC block and the
methods), never with fits left over from an earlier run."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from report_html import parse

from pipeline import paths
from pipeline.report import write_report
from pipeline.tables import write_table

EXCLUDED = "sub-01_task-rejection"
KEPT = "sub-02_task-rejection"


def _confounds(out, stem: str, largest_mm: float, n: int = 20) -> None:
    """A confounds table (displacement growing to ``largest_mm``, FD 0.2 mm)."""
    table = pd.DataFrame({c: np.zeros(n) for c in ("trans_x", "trans_y", "trans_z", "rot_x",
                                                   "rot_y", "rot_z")})
    table["framewise_displacement"] = 0.2
    table["displacement"] = np.linspace(0.0, largest_mm, n)
    sub = stem.split("_")[0]
    write_table(out / paths.CONFOUNDS.format(scan=f"{sub}/pet/{stem}"), table,
                {"FrameFromReference": [np.eye(4).tolist()] * n})


def test_scan_excluded_for_motion_is_shown_as_excluded(synthetic_results, tmp_path):
    """A scan 12 mm from its motion reference (over the 10 mm default) is listed with the
    reason in the summary, flagged in its QC block without its (older) fits, and counted in
    the methods; a scan moving 1 mm is summarized and analysed as usual."""
    out, config = synthetic_results
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    _confounds(copy, EXCLUDED, 12.0)
    _confounds(copy, KEPT, 1.0)
    html = write_report(copy, config, tmp_path / "r.html", methods_md=tmp_path / "methods.md",
                        figure_dir=tmp_path / "f")
    text = html.read_text()
    report = parse(html)
    assert not report.errors, report.errors[:3]
    listed = dict(zip(report.headers["motion-exclusions"],
                      zip(*report.tables["motion-exclusions"], strict=True), strict=True))
    assert [v for v, _ in listed["scan"]] == [EXCLUDED]
    reason = "a frame is displaced 12.0 mm from the reference (> 10 mm)"
    assert [v for v, _ in listed["reason"]] == [reason]
    block = text.split(f'id="{EXCLUDED}"')[1].split('class="scan"')[0]
    assert "left out of every analysis" in block and "12.0 mm" in block
    assert "TACs, fits and residuals" not in block  # the older fits are not shown
    kept = text.split(f'id="{KEPT}"')[1].split('class="scan"')[0]
    assert "TACs, fits and residuals" in kept and "Head motion (preprocessing)" in kept
    methods = (tmp_path / "methods.md").read_text()
    assert "2 scans in scanner space were corrected for head motion" in methods
    assert f"1 scan was excluded for head motion: {EXCLUDED} ({reason})" in methods
    assert "framewise displacement above 2 mm" in methods


def test_looser_limit_keeps_the_scan(synthetic_results, tmp_path):
    """The same scan under motion.max_displacement_mm = 20 is analysed (the decision is the
    workflow's, from the config that ran)."""
    out, config = synthetic_results
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    _confounds(copy, EXCLUDED, 12.0)
    looser = dict(config, motion={"fd_mm": 2.0, "max_displacement_mm": 20.0,
                                  "max_outlier_fraction": 0.25})
    html = write_report(copy, looser, tmp_path / "r.html", methods_md=tmp_path / "methods.md",
                        figure_dir=tmp_path / "f")
    assert "motion-exclusions" not in parse(html).tables
    assert "No scan was excluded for head motion" in (tmp_path / "methods.md").read_text()
