"""The report of a real workflow run on the demo study (slow: runs the workflow if needed).

Uses the outputs in ``$PETBP_DEMO_RESULTS`` (``$PETBP_DEMO_BIDS`` names the dataset when it
is not the demo), else ``results/`` (the default ``output_dir``) when a run is there. With
neither (as in CI) the workflow itself runs once on a tiny demo study (4 subjects, 6 mm
voxels, few permutations/simulations: ~1 min on 2 cores) into a temporary directory, so
the report checked here is the one ``snakemake`` wrote, compared with the TSVs it wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from report_html import check_table_equals_tsv, parse

from pipeline.report import load_spec
from pipeline.tables import read_table

pytestmark = pytest.mark.slow  # runs the Snakemake workflow (~1 min) unless results exist

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: The tiny demo run of CI: config/config.yaml with these keys replaced.
TINY = {
    "demo": {"subjects": 4, "voxel_size": 6},
    "statistics": {
                   "n_boot": 200, "n_perm": 200},
    "voxelwise": {"n_perm": 20},
}


def _snakemake(*args: str, configfile: Path | None = None, **config: str):
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT),
           "--cores", "2", "--force-use-threads", *args]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if config:
        cmd += ["--config", *[f"{k}={v}" for k, v in config.items()]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          check=False)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, Path | None, str]:
    """(output_dir, configfile or None, bids_dir) of a finished workflow run with its report."""
    given = os.environ.get("PETBP_DEMO_RESULTS")
    bids = os.environ.get("PETBP_DEMO_BIDS", "demo")
    if given or (ROOT / "results" / "report.html").is_file():
        results = Path(given) if given else ROOT / "results"
        if not (results / "report.html").is_file():
            pytest.fail(f"no report.html under PETBP_DEMO_RESULTS={results}")
        return results, None, bids
    tmp = tmp_path_factory.mktemp("demo_run")
    configfile = tmp / "tiny.yaml"
    configfile.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp / "out")}))
    result = _snakemake(configfile=configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    return tmp / "out", configfile, "demo"


@pytest.fixture(scope="session")
def demo_report(demo_run) -> Path:
    return demo_run[0] / "report.html"


def test_demo_report_has_every_section_and_no_errors(demo_report):
    """Every section of the spec is there and nothing failed while building it."""
    report = parse(demo_report)
    assert report.sections == [s["id"] for s in load_spec()["sections"]]
    assert not report.errors, report.errors[:3]
    assert report.images and all(src.startswith("data:image/") for src in report.images)


def test_demo_report_tables_equal_the_tsvs(demo_run, demo_report):
    """The primary model's contrasts and the correlations are those of the TSVs."""
    results = demo_run[0]
    report = parse(demo_report)
    contrasts = read_table(results / "group" / "contrasts.tsv")
    primary = next(t[len("contrasts-"):] for t in report.tables if t.startswith("contrasts-"))
    check_table_equals_tsv(report, f"contrasts-{primary}",
                           contrasts[contrasts["model"] == primary].reset_index(drop=True))
    check_table_equals_tsv(report, "correlations",
                           read_table(results / "group" / "correlations.tsv"))


def test_demo_report_headline_quotes_the_correlation_tsv(demo_run, demo_report):
    """The key-findings line of amygdala_l vs resilience carries r, p and n of the TSV."""
    cor = read_table(demo_run[0] / "group" / "correlations.tsv")
    row = cor[(cor["region"] == "amygdala_l") & (cor["score"] == "resilience")
              & (cor["contrast"] == "rejection") & (cor["measure"] == "activation")
              & (cor["method"] == "pearson")].iloc[0]
    text = demo_report.read_text(encoding="utf-8")
    want = (f"amygdala_l activation (rejection) vs resilience: r = {row['r']:.2f}, "
            f"p = {row['p']:.2g}")
    assert want in text
    assert f"n = {int(row['n'])}." in text


def test_demo_report_has_one_qc_block_per_scan(demo_run, demo_report):
    """Every scan with a TAC table has its row in the QC overview."""
    scans = {p.name.split("_desc-")[0] for p in demo_run[0].glob("sub-*/**/pet/*_tacs.tsv")}
    assert scans
    overview = parse(demo_report).tables["scan-overview"]
    assert {row[1][0] for row in overview} == scans


def test_snakemake_report_zip_holds_the_report(demo_run, tmp_path):
    """``snakemake --report`` on the finished run packs report.html, methods.md, figures."""
    results, configfile, bids = demo_run
    archive = tmp_path / "report.zip"
    config = {"output_dir": str(results)} if configfile is None else {}
    if configfile is None:
        config["bids_dir"] = bids
    result = _snakemake("--report", str(archive), str(results / "report.html"),
                        configfile=configfile, **config)
    assert result.returncode == 0, result.stderr[-3000:]
    names = [Path(n).name for n in zipfile.ZipFile(archive).namelist()]
    assert {"report.html", "methods.md"} <= set(names)
    assert any(n.startswith("paired_contrast-") and n.endswith(".svg") for n in names)
