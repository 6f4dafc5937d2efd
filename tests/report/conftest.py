"""Fixtures of the report tests: the synthetic study (see report_synthetic.py) and its report."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_synthetic import make_results


@pytest.fixture(scope="session")
def synthetic_results(tmp_path_factory) -> tuple[Path, dict]:
    """(output_dir, config) of the synthetic study, written once per test session."""
    return make_results(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def synthetic_report(synthetic_results) -> tuple[Path, Path, dict]:
    """(report.html, output_dir, config), built once per test session."""
    from pipeline.report import write_report

    out, config = synthetic_results
    html = write_report(out, config, out / "report.html", methods_md=out / "methods.md")
    return html, out, config
