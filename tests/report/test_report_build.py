"""The HTML report built on the synthetic results: sections, numbers, self-containment."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from report_html import check_table_equals_tsv, parse

from pipeline.errors import ConfigError, InputError
from pipeline.report import load_spec, write_report
from pipeline.report.paired import activation_scores, paired_from_values, paired_values
from pipeline.tables import read_table

SECTION_IDS = [s["id"] for s in load_spec()["sections"]]


def test_write_report_has_every_section(synthetic_report):
    """All sections of spec.yaml appear, in order, with a table-of-contents link each."""
    html, _, _ = synthetic_report
    report = parse(html)
    assert report.sections == SECTION_IDS
    assert {("href", f"#{s}") for s in SECTION_IDS} <= set(report.urls)


def test_write_report_contrast_table_equals_tsv(synthetic_report):
    """The primary model's contrast table shows exactly the rows and values of contrasts.tsv."""
    html, out, _ = synthetic_report
    tsv = read_table(out / "group" / "contrasts.tsv")
    report = parse(html)
    rows = tsv[tsv["model"] == "logan_ref"].reset_index(drop=True)
    check_table_equals_tsv(report, "contrasts-logan_ref", rows)  # the key columns
    check_table_equals_tsv(report, "contrasts-logan_ref-all", rows)  # folded: every column
    assert report.headers["contrasts-logan_ref-all"] == list(tsv.columns)


def test_write_report_correlation_and_bp_tables_equal_tsv(synthetic_report):
    """correlations.tsv and the primary model's rows of bp_nd.tsv are shown unchanged."""
    html, out, _ = synthetic_report
    report = parse(html)
    check_table_equals_tsv(report, "correlations", read_table(out / "group" / "correlations.tsv"))
    bp = read_table(out / "group" / "bp_nd.tsv")
    check_table_equals_tsv(report, "bp-nd-logan_ref",
                            bp[bp["model"] == "logan_ref"].reset_index(drop=True))


def test_write_report_loads_nothing_from_outside(synthetic_report):
    """Every src is a data: URI and every href an in-page anchor; a CSP forbids the rest."""
    html, _, _ = synthetic_report
    report = parse(html)
    assert report.images
    assert all(src.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,"))
               for src in report.images)
    assert all(url.startswith("#") for key, url in report.urls if key == "href")
    text = html.read_text()
    assert "default-src 'none'" in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", text)


def test_write_report_writes_figure_files_and_methods(synthetic_report):
    """Figures land in group/figures (SVG group plots, PNG per-scan QC); methods.md exists."""
    html, out, _ = synthetic_report
    figures = out / "group" / "figures"
    assert (figures / "paired_contrast-rejection_model-logan_ref.svg").is_file()
    # one scatter per correlation row group: 2 measures x with/without covariates
    assert len(list(figures.glob("correlation_contrast-rejection_region-amygdala_l_"
                                 "score-resilience_*.svg"))) == 4
    assert len(list((figures / "qc").glob("*_overview.png"))) == 10  # 5 subjects x 2 scans
    methods = (out / "methods.md").read_text()
    assert "45-90 min" in methods and "Benjamini" in methods
    assert "paired t-test" in methods
    # null_drift.method: none on within-scan windows: the methods say the drift is uncorrected
    assert "Within-scan null drift was not corrected" in methods
    assert not parse(html).errors  # nothing failed on a complete results directory


def test_write_report_flags_planted_problems(synthetic_report):
    """The motion-like frame of sub-03 and the at_bound fit of sub-02 are flagged."""
    from report_synthetic import BOUND_SCAN, DURATIONS_S, OUTLIER_FRAME, OUTLIER_SCAN

    html, _, _ = synthetic_report
    text = html.read_text()
    start = sum(DURATIONS_S[:OUTLIER_FRAME]) / 60
    end = start + DURATIONS_S[OUTLIER_FRAME] / 60
    scan_block = text.split(f'id="{OUTLIER_SCAN}"')[1].split('class="scan"')[0]
    assert f"motion-like frame outlier: {start:g}-{end:g} min" in scan_block
    bound_block = text.split(f'id="{BOUND_SCAN}"')[1].split('class="scan"')[0]
    assert "fit flag at_bound: caudate_l (acceptance)" in bound_block
    report = parse(html)
    overview = dict(zip(report.headers["scan-overview"], zip(*report.tables["scan-overview"],
                                                             strict=True), strict=True))
    flagged = {scan for (scan, _), (n, _) in zip(overview["scan"], overview["flags"],
                                                  strict=True) if n != "0"}
    assert flagged == {OUTLIER_SCAN, BOUND_SCAN}


def test_write_report_lists_excluded_subject_with_reason(synthetic_report):
    """sub-06 (no scans) is excluded, with the reason from group/exclusions.tsv."""
    html, _, _ = synthetic_report
    rows = {r[0][0]: [c[0] for c in r] for r in parse(html).tables["subjects"]}
    assert rows["sub-06"][2] == "excluded"
    assert "no task-rejection scan" in rows["sub-06"][3]
    assert rows["sub-01"][2] == "included"


def test_paired_values_reproduce_contrast_table(synthetic_results):
    """Pairs rebuilt from bp_nd.tsv give the contrast table's mean % change exactly."""
    out, config = synthetic_results
    bp = read_table(out / "group" / "bp_nd.tsv")
    contrasts = read_table(out / "group" / "contrasts.tsv")
    for _, row in contrasts.iterrows():
        paired = paired_values(bp, row["contrast"], config, row["model"])
        rows = paired[paired["region"] == row["region"]]
        assert len(rows) == row["n"]
        # 1e-7 % : BP_ND in the TSV keeps 10 significant digits (error <= 100 x 2 x 5e-10)
        assert rows["change_pct"].mean() == pytest.approx(row["change_pct_mean"], abs=1e-7)


def test_activation_scores_reproduce_correlation(synthetic_results):
    """The scatter's points give the r of correlations.tsv (Pearson, no covariates)."""
    out, config = synthetic_results
    bp = read_table(out / "group" / "bp_nd.tsv")
    values = read_table(out / "group" / "contrast_values.tsv")
    participants = pd.read_csv(Path(config["bids_dir"]) / "participants.tsv", sep="\t")
    cor = read_table(out / "group" / "correlations.tsv")
    for measure in ("activation", "activation_pct"):
        row = cor[(cor["method"] == "pearson") & (cor["measure"] == measure)].iloc[0]
        for paired in (paired_from_values(values, "rejection", "logan_ref"),
                       paired_values(bp, "rejection", config, "logan_ref")):
            xy = activation_scores(paired, participants, "resilience", "amygdala_l", measure)
            assert len(xy) == row["n"]
            # 1e-8: the tables keep 10 significant digits
            assert xy["x"].corr(xy["y"]) == pytest.approx(row["r"], abs=1e-8)


def test_write_report_failed_figure_shows_error_box(synthetic_results, tmp_path, monkeypatch):
    """A figure that raises becomes an error box and an Errors row; the report is written."""
    from pipeline.report import figures

    def broken(*args, **kwargs):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(figures, "plot_paired", broken)
    spec = tmp_path / "spec.yaml"
    spec.write_text("sections:\n  - {id: regions, kind: regions, title: R}\n"
                    "  - {id: errors, kind: errors, title: E}\n")
    out, config = synthetic_results
    html = write_report(out, config, tmp_path / "r.html", spec=spec, figure_dir=tmp_path / "f")
    report = parse(html)
    assert any("planted failure" in e for e in report.errors)
    assert any("planted failure" in c[0] for r in report.tables["errors-table"] for c in r)
    assert (tmp_path / "f" / "change_model-logan_ref.svg").is_file()  # the others were drawn


def test_write_report_without_group_tables_still_writes(tmp_path):
    """An output directory with nothing in it yields a report that lists what is missing."""
    (tmp_path / "out").mkdir()
    html = write_report(tmp_path / "out", {}, tmp_path / "r.html")
    text = html.read_text()
    assert "group/bp_nd.tsv: file not found" in text.replace(str(tmp_path / "out") + "/", "")
    assert parse(html).sections == SECTION_IDS


def test_write_report_missing_output_dir_is_clear(tmp_path):
    """A wrong output directory gets an InputError naming it."""
    with pytest.raises(InputError, match=r"nope: output directory not found"):
        write_report(tmp_path / "nope", {}, tmp_path / "r.html")


def test_load_spec_rejects_unknown_kind(tmp_path):
    """A spec section with an unknown kind is refused with the allowed kinds."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("sections:\n  - {id: x, kind: plots}\n")
    with pytest.raises(ConfigError, match=r"section 0 has kind 'plots'.*\n  Use one of: summary"):
        load_spec(spec)


def test_write_report_says_when_curves_are_missing(synthetic_report):
    """The scans without _fits.tsv say their fitted curves are missing; the others do not."""
    from report_synthetic import NO_CURVES_SUBJECT

    html, _, _ = synthetic_report
    text = html.read_text()
    note = "No fitted curves for this scan"
    missing = text.split(f'id="sub-{NO_CURVES_SUBJECT}_task-rejection"')[1].split(
        'class="scan"')[0]
    assert note in missing
    assert text.count(note) == 2  # the two scans of that subject only


def test_write_report_embeds_region_overlays(synthetic_report):
    """A scan's region-overlay PNG is embedded in that scan's block."""
    html, _, _ = synthetic_report
    block = html.read_text().split('id="sub-01_task-rejection"')[1].split('class="scan"')[0]
    assert "Regions of sub-01_task-rejection" in block
    assert "sub-01_task-rejection_desc-default_regions.png" in block


def test_write_report_failed_page_still_writes_an_error_page(synthetic_results, tmp_path,
                                                            monkeypatch):
    """If rendering itself fails, a small page with the traceback is written instead."""
    from pipeline.report import build

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(build, "render_report", broken)
    out, config = synthetic_results
    html = write_report(out, config, tmp_path / "r.html", figure_dir=tmp_path / "f")
    text = html.read_text()
    assert "petbp report could not be built" in text
    assert "RuntimeError: template exploded" in text


def test_write_report_summary_states_tracer_design_and_contrasts(synthetic_report):
    """The summary names the labelled tracer, the design kind and each contrast's conditions."""
    html, _, _ = synthetic_report
    summary = html.read_text().split('id="summary"')[1].split('id="regions"')[0]
    assert "[11C]carfentanil" in summary
    assert "condition windows within scans" in summary
    assert "rejvsacc (rejection vs rejbase, minus the acceptance change)" in summary


def test_write_report_key_findings_quote_the_tables(synthetic_report):
    """Key findings give one line per contrast and the headline r, p, n of correlations.tsv."""
    html, out, _ = synthetic_report
    report = parse(html)
    summary = html.read_text().split('id="summary"')[1].split('id="regions"')[0]
    assert "Key findings (primary model logan_ref)" in summary
    cor = read_table(out / "group" / "correlations.tsv")
    row = cor[(cor["method"] == "pearson") & (cor["measure"] == "activation")
              & cor["covariates"].isna()].iloc[0]
    assert (f"amygdala_l activation (rejection) vs resilience: r = {row['r']:.2f}, "
            f"p = {row['p']:.2g}") in summary
    assert f"n = {int(row['n'])}." in summary
    for name in ("rejection:", "acceptance:", "rejvsacc:"):
        assert name in summary
    assert report.sections[0] == "summary"


def test_collect_results_finds_scans_with_any_bids_entities(tmp_path):
    """Stems with session, tracer, reconstruction and run, or without task, are all found."""
    from pipeline.report.collect import collect_results

    stems = ["sub-01_ses-a_task-rest_trc-cfn_rec-acdyn_run-2", "sub-02_ses-b"]
    for stem in stems:
        pet = tmp_path / stem.split("_")[0] / stem.split("_")[1] / "pet"
        pet.mkdir(parents=True)
        (pet / f"{stem}_desc-default_tacs.tsv").write_text("frame_start\tframe_end\tx\n0\t60\t1\n")
        (pet / f"{stem}_model-mrtm2_bp.tsv").write_text("region\tbp_nd\nx\t1\n")
    scans = {s.stem: s for s in collect_results(tmp_path, {}).scans}
    assert sorted(scans) == sorted(stems)
    assert scans[stems[0]].entities == {"sub": "01", "ses": "a", "task": "rest", "trc": "cfn",
                                        "rec": "acdyn", "run": "2"}
    assert set(scans[stems[1]].bp) == {"mrtm2"} and scans[stems[1]].tacs is not None


def test_write_report_survives_changed_drift_columns(synthetic_results, tmp_path):
    """Renamed/extra/missing drift-correction columns of contrasts.tsv (the statistics may
    change them) still give the summary, tables and % change plot, with no error box."""
    import shutil

    import yaml

    out, config = synthetic_results
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    path = copy / "group" / "contrasts.tsv"
    table = read_table(path)
    table = table.drop(columns=[c for c in ("effect_pct_mean", "mean_ci_low", "mean_ci_high")
                                if c in table]).rename(columns={"drift_pct": "drift_pct_mean"})
    table["drift_sys_sd"] = 1.5
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"sections": [  # the shipped layout, fewer sections
        s for s in load_spec()["sections"] if s["kind"] in ("summary", "regions", "methods",
                                                            "errors")]}))
    html = write_report(copy, config, tmp_path / "r.html", spec=spec, figure_dir=tmp_path / "f")
    report = parse(html)
    assert not report.errors, report.errors[:3]
    assert (tmp_path / "f" / "change_model-logan_ref.svg").is_file()
    model = table["model"].iloc[0]
    shown = report.headers[f"contrasts-{model}-all"]
    assert "drift_sys_sd" in shown and "drift_pct_mean" in shown
    assert "Key findings" in html.read_text()


@pytest.mark.parametrize("pool, says", [("scans", True), ("none", False)])
def test_methods_say_whether_the_drift_is_pooled_over_scans(tmp_path, pool, says):
    """statistics.null_drift.pool: scans adds the pooling (and its assumption) to the
    drift sentence of the methods; none leaves it out."""
    from pipeline.config import load_config
    from pipeline.report.collect import StudyResults
    from pipeline.report.methods import methods_markdown

    config = load_config("config/config.yaml")
    config["statistics"]["null_drift"]["pool"] = pool
    drift = pd.DataFrame({"contrast": ["rejection"], "region": ["pag"], "model": ["logan_ref"],
                          "drift_method": ["release_model"], "drift_pct": [1.0]})
    text = methods_markdown(StudyResults(output_dir=tmp_path, config=config, null_drift=drift))
    assert "release model" in text
    assert ("mean over its scans with the same windows" in text) is says


@pytest.mark.parametrize("release_model, says", [("srtm", False), ("early_step", True)])
def test_methods_name_the_early_step_release_model(tmp_path, release_model, says):
    """statistics.null_drift.release_model: early_step adds its nuisance BP_ND (with
    baseline_start in minutes) to the drift sentence; srtm leaves it out."""
    from pipeline.config import load_config
    from pipeline.report.collect import StudyResults
    from pipeline.report.methods import methods_markdown

    config = load_config("config/config.yaml")
    config["statistics"]["null_drift"].update(release_model=release_model, baseline_start=25)
    drift = pd.DataFrame({"contrast": ["rejection"], "region": ["pag"], "model": ["logan_ref"],
                          "drift_method": ["release_model"], "drift_pct": [1.0]})
    text = methods_markdown(StudyResults(output_dir=tmp_path, config=config, null_drift=drift))
    assert ("nuisance BP_ND of its own up to 25 min" in text) is says
