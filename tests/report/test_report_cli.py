"""``petbp report``: writes the report from an output directory; bad input is a clear error."""

from __future__ import annotations

import yaml
from report_html import parse

from pipeline.cli import main

SPEC = "sections:\n  - {id: summary, kind: summary}\n  - {id: errors, kind: errors}\n"


def test_petbp_report_writes_html_and_methods(synthetic_results, tmp_path, capsys):
    """With --config and -o the report and methods.md land where asked; exit status 0."""
    out, config = synthetic_results
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    html = tmp_path / "r" / "study.html"
    status = main(["report", str(out), "--config", str(config_file), "-o", str(html),
                   "--spec", str(spec)])
    assert status == 0
    assert parse(html).sections == ["summary", "errors"]
    assert (tmp_path / "r" / "methods.md").read_text().startswith("# Methods")
    assert f"wrote {html}" in capsys.readouterr().out


def test_petbp_report_missing_output_dir_exits_1(tmp_path, capsys):
    """A wrong OUTPUT_DIR prints one message naming it, no traceback, exit status 1."""
    status = main(["report", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert status == 1
    assert "missing: output directory not found" in err
    assert "Traceback" not in err


def test_petbp_report_bad_config_file_exits_1(synthetic_results, tmp_path, capsys):
    """A config that is not a valid config mapping is refused with the file named."""
    out, _ = synthetic_results
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    status = main(["report", str(out), "--config", str(bad)])
    assert status == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err


def test_petbp_report_methods_only_writes_just_the_methods(synthetic_results, tmp_path):
    """--methods-only writes methods.md (models, windows, references) and no HTML."""
    out, config = synthetic_results
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    methods = tmp_path / "m" / "methods.md"
    status = main(["report", str(out), "--config", str(config_file), "--methods-only",
                   "--methods", str(methods)])
    assert status == 0
    text = methods.read_text()
    assert "Logan" in text and "rejbase 5-45 min" in text and "## References" in text
    assert not list((tmp_path / "m").glob("*.html"))
