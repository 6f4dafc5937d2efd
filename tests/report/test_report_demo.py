"""The report of a real workflow run (the demo study), when its outputs are present.

Looks for the outputs in ``$PETBP_DEMO_RESULTS`` or ``results/`` (the default
``output_dir``; ``$PETBP_DEMO_BIDS`` names the dataset when it is not the demo); skips
when the workflow has not been run. The report the workflow wrote
is checked as it is; without one it is built into a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from report_html import check_table_equals_tsv, parse

from pipeline.report import load_spec, write_report
from pipeline.tables import read_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("PETBP_DEMO_RESULTS", ROOT / "results"))
BIDS = os.environ.get("PETBP_DEMO_BIDS", "demo")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """report.html of the demo run (the workflow's own, else built now)."""
    if not (RESULTS / "group" / "contrasts.tsv").is_file():
        pytest.skip(f"no workflow outputs under {RESULTS} (run snakemake first, or set "
                    "PETBP_DEMO_RESULTS)")
    html = RESULTS / "report.html"
    if html.is_file():
        return html
    from pipeline.config import load_config

    config = load_config(ROOT / "config" / "config.yaml",
                         overrides={"output_dir": str(RESULTS), "bids_dir": BIDS})
    tmp = tmp_path_factory.mktemp("demo_report")
    return write_report(RESULTS, config, tmp / "report.html", figure_dir=tmp / "figures")


def test_demo_report_has_every_section_and_no_errors(demo_report):
    """Every section of the spec is there and nothing failed while building it."""
    report = parse(demo_report)
    assert report.sections == [s["id"] for s in load_spec()["sections"]]
    assert not report.errors, report.errors[:3]
    assert all(src.startswith("data:image/") for src in report.images)


def test_demo_report_tables_equal_the_tsvs(demo_report):
    """The primary model's contrasts and the correlations are those of the TSVs."""
    report = parse(demo_report)
    contrasts = read_table(RESULTS / "group" / "contrasts.tsv")
    primary = next(t[len("contrasts-"):] for t in report.tables if t.startswith("contrasts-"))
    check_table_equals_tsv(report, f"contrasts-{primary}",
                           contrasts[contrasts["model"] == primary].reset_index(drop=True))
    check_table_equals_tsv(report, "correlations",
                           read_table(RESULTS / "group" / "correlations.tsv"))


def test_demo_report_has_one_qc_block_per_scan(demo_report):
    """Every scan with a TAC table has its row in the QC overview."""
    scans = {p.name.split("_desc-")[0] for p in RESULTS.glob("sub-*/**/pet/*_tacs.tsv")}
    overview = parse(demo_report).tables["scan-overview"]
    assert {row[1][0] for row in overview} == scans


def test_snakemake_report_zip_holds_the_report(demo_report, tmp_path):
    """``snakemake --report`` on the finished run packs report.html, methods.md, figures."""
    import subprocess
    import sys
    import zipfile

    if demo_report.parent != RESULTS:
        pytest.skip("the workflow did not write report.html for these outputs")
    archive = tmp_path / "report.zip"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--config",
         f"output_dir={RESULTS}", f"bids_dir={BIDS}", "--report", str(archive),
         str(demo_report)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    names = [Path(n).name for n in zipfile.ZipFile(archive).namelist()]
    assert {"report.html", "methods.md"} <= set(names)
    assert any(n.startswith("paired_contrast-") and n.endswith(".svg") for n in names)
