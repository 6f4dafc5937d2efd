"""Tests of condition-level ratings: phenotype files, rating changes, their tests, and
correlations with a rating score or within a group."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from group_data import CONDITIONS, CONTRASTS, GROUPS
from scipy import stats

from pipeline.design import load_design
from pipeline.errors import ConfigError, InputError
from pipeline.groups import parse_groups
from pipeline.phenotype import phenotype_files, read_ratings
from pipeline.stats.correlations import correlate_scores
from pipeline.stats.group_tables import write_ratings
from pipeline.stats.ratings import rating_changes, rating_tests
from pipeline.tables import read_json


def _design(groups=GROUPS):
    return load_design({"design": {"conditions": CONDITIONS, "contrasts": CONTRASTS,
                                   "groups": groups}})


def _ratings_file(tmp_path, table, name="desire", sidecar=True):
    folder = tmp_path / "bids" / "phenotype"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tsv"
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    if sidecar:
        (folder / f"{name}.json").write_text(json.dumps({
            "MeasurementToolMetadata": {"Description": "Desire for social contact"},
            "rejbase": {"Description": "rating", "Units": "mm"}}))
    return path


def _table(rng, n=10):
    base = rng.normal(50, 10, n)
    return pd.DataFrame({"participant_id": [f"sub-{i + 1:02d}" for i in range(n)],
                         "rejbase": base, "rejection": base + rng.normal(-5, 4, n),
                         "accbase": base + rng.normal(0, 3, n),
                         "acceptance": base + rng.normal(6, 4, n)})


def _labels(n=10):
    return pd.Series(["HC"] * (n // 2) + ["MDD"] * (n - n // 2),
                     index=pd.Index([f"sub-{i + 1:02d}" for i in range(n)],
                                    name="participant_id"))


def test_read_ratings_reads_condition_columns_and_sidecar(tmp_path, rng):
    """Condition columns become floats, other columns are ignored, labels gain sub-."""
    table = _table(rng).assign(notes="x")
    table.loc[0, "participant_id"] = "01"
    path = _ratings_file(tmp_path, table)
    rating = read_ratings(path, list(CONDITIONS))
    assert rating.measure == "desire" and rating.description == "Desire for social contact"
    assert rating.units == "mm" and rating.table.participant_id.iloc[0] == "sub-01"
    assert list(rating.table.columns) == ["participant_id", *CONDITIONS]
    assert phenotype_files(tmp_path / "bids") == {"desire": path}


def test_read_ratings_missing_condition_column_names_file_and_fix(tmp_path, rng):
    """A needed condition column that is absent: one error naming file, column, fix."""
    path = _ratings_file(tmp_path, _table(rng).drop(columns="acceptance"))
    with pytest.raises(InputError, match=r"desire.tsv: no column for condition\(s\) "
                                         r"acceptance.*\n  Add one column per condition"):
        read_ratings(path, list(CONDITIONS), required=["accbase", "acceptance"])


def test_read_ratings_non_numeric_names_participants(tmp_path, rng):
    """Text in a rating column is an error quoting the participants and values."""
    table = _table(rng).astype({"rejection": object})
    table.loc[2, "rejection"] = "high"
    path = _ratings_file(tmp_path, table)
    with pytest.raises(InputError, match=r"column 'rejection' must hold numeric ratings but "
                                         r"has sub-03: 'high'"):
        read_ratings(path, list(CONDITIONS))


def test_read_ratings_without_participant_id(tmp_path, rng):
    path = _ratings_file(tmp_path, _table(rng).rename(columns={"participant_id": "id"}))
    with pytest.raises(InputError, match="no participant_id column"):
        read_ratings(path, list(CONDITIONS))


def test_rating_changes_per_contrast_and_exclusions(tmp_path, rng, caplog):
    """change = condition - baseline (minus the control's change for rejvsacc); a
    participant without scans and a missing rating are left out and logged."""
    table = _table(rng, 10)
    table.loc[4, "acceptance"] = np.nan
    rating = read_ratings(_ratings_file(tmp_path, table), list(CONDITIONS))
    scanned = [f"sub-{i + 1:02d}" for i in range(9)]  # sub-10 has no scans
    excluded = []
    with caplog.at_level(logging.WARNING):
        changes = rating_changes([rating], _design(), scanned=scanned, labels=_labels(),
                                 excluded=excluded)
    assert "sub-10 (" in caplog.text and "has no scans" in caplog.text
    assert {"measure": "desire", "participant_id": "sub-10",
            "reason": "no scans (not in the analysed participants)"} in excluded
    rej = changes[changes.contrast == "rejection"].set_index("participant_id")
    t = table.set_index("participant_id")
    assert len(rej) == 9 and "sub-10" not in rej.index
    assert np.allclose(rej.rating_change, (t.rejection - t.rejbase)[rej.index])
    acc = changes[changes.contrast == "acceptance"]
    assert "sub-05" not in set(acc.participant_id)  # n/a rating
    both = changes[changes.contrast == "rejvsacc"].set_index("participant_id")
    expected = (t.rejection - t.rejbase) - (t.acceptance - t.accbase)
    assert np.allclose(both.rating_change, expected[both.index])
    assert set(rej.group) == {"HC", "MDD"}


def test_rating_tests_match_scipy(rng):
    """Within: one-sample t of the changes; between: Welch t of group a minus b."""
    n = 20
    changes = pd.DataFrame({"measure": "desire", "contrast": "acceptance",
                            "participant_id": [f"sub-{i}" for i in range(n)],
                            "group": ["HC"] * 10 + ["MDD"] * 10,
                            "rating_baseline": 0.0, "rating_condition": 0.0,
                            "rating_change": np.r_[rng.normal(8, 5, 10), rng.normal(0, 5, 10)]})
    table = rating_tests(changes, parse_groups(GROUPS), n_perm=1000)
    hc = table[(table.test == "within") & (table.group == "HC")].iloc[0]
    ref = stats.ttest_1samp(changes.rating_change[:10], 0.0)
    assert hc.t == pytest.approx(ref.statistic, rel=1e-10)
    assert hc.p == pytest.approx(ref.pvalue, rel=1e-10)
    between = table[table.test == "between"].iloc[0]
    ref = stats.ttest_ind(changes.rating_change[:10], changes.rating_change[10:],
                          equal_var=False)
    assert between.t == pytest.approx(ref.statistic, rel=1e-10)
    assert between.group == "HC-MDD" and between.effect_size_kind == "hedges_g"
    assert list(table.group) == ["all", "HC", "MDD", "HC-MDD"]


def _values(rng, n=10):
    pids = [f"sub-{i + 1:02d}" for i in range(n)]
    return pd.DataFrame({"contrast": "acceptance", "region": "thalamus_l", "model": "m",
                         "participant_id": pids, "group": _labels(n).to_numpy(),
                         "activation": rng.normal(size=n),
                         "activation_pct": rng.normal(size=n)})


def test_write_ratings_writes_changes_tests_and_exclusions(tmp_path, rng):
    """The step writes both tables; its sidecar lists who was left out and why."""
    values = _values(rng, 9)
    values_path = tmp_path / "values.tsv"
    values.to_csv(values_path, sep="\t", index=False)
    path = _ratings_file(tmp_path, _table(rng, 10))
    parts = pd.DataFrame({"participant_id": [f"sub-{i + 1:02d}" for i in range(10)],
                          "group": _labels(10).to_numpy()})
    outs = tmp_path / "changes.tsv", tmp_path / "tests.tsv"
    write_ratings({"desire": path}, values_path, parts, *outs, design=_design(),
                  correlations=[{"contrast": "acceptance", "score": "desire"}], n_perm=200)
    changes = pd.read_csv(outs[0], sep="\t")
    assert set(changes.contrast) == {"rejection", "acceptance", "rejvsacc"}
    assert "sub-10" not in set(changes.participant_id)
    side = read_json(tmp_path / "changes.json")
    assert side["excluded"][0]["participant_id"] == "sub-10"
    assert side["measures"]["desire"]["description"] == "Desire for social contact"
    assert {"within", "between"} == set(pd.read_csv(outs[1], sep="\t").test)


def test_write_ratings_needed_column_missing_writes_nothing(tmp_path, rng):
    """A correlation asks for the acceptance rating change but the file lacks accbase:
    one error naming the file, and neither table is written."""
    values_path = tmp_path / "values.tsv"
    _values(rng).to_csv(values_path, sep="\t", index=False)
    path = _ratings_file(tmp_path, _table(rng).drop(columns="accbase"))
    parts = pd.DataFrame({"participant_id": [f"sub-{i + 1:02d}" for i in range(10)],
                          "group": _labels().to_numpy()})
    outs = tmp_path / "changes.tsv", tmp_path / "tests.tsv"
    with pytest.raises(InputError, match=r"desire.tsv: no column for condition\(s\) accbase"):
        write_ratings({"desire": path}, values_path, parts, *outs, design=_design(),
                      correlations=[{"contrast": "acceptance", "score": "desire"}])
    with pytest.raises(InputError, match=r"score\(s\) \['craving'\] are neither columns"):
        write_ratings({"desire": path}, values_path, parts, *outs, design=_design(),
                      correlations=[{"contrast": "acceptance", "score": "craving"}])
    assert not any(p.exists() for p in outs)


def test_correlate_scores_with_rating_change_and_group(rng):
    """score: <measure> uses the rating change of the contrast; group: restricts to that
    group's participants; rows say group and score kind."""
    values = _values(rng, 10)
    change = 2.0 * values["activation"] + rng.normal(0, 0.5, 10)
    ratings = pd.DataFrame({"measure": "desire", "contrast": "acceptance",
                            "participant_id": values.participant_id,
                            "rating_change": change})
    parts = pd.DataFrame({"participant_id": values.participant_id})
    specs = [{"contrast": "acceptance", "region": "thalamus_l", "score": "desire",
              "group": "HC"},
             {"contrast": "acceptance", "region": "thalamus_l", "score": "desire"}]
    table = correlate_scores(values, parts, specs, model="m", n_boot=100, n_perm=100,
                             ratings=ratings)
    hc = table[(table.group == "HC") & (table.method == "pearson")
               & (table.measure == "activation")].iloc[0]
    ref = stats.pearsonr(values.activation[:5], change[:5])
    assert hc.r == pytest.approx(ref.statistic, rel=1e-10) and hc.n == 5
    assert set(table.group) == {"HC", "all"} and set(table.score_kind) == {"rating_change"}
    with pytest.raises(ConfigError, match="group 'BD' has no values"):
        correlate_scores(values, parts, [{**specs[0], "group": "BD"}], model="m",
                         ratings=ratings)
    with pytest.raises(InputError, match="no rating change of contrast 'rejection'"):
        correlate_scores(values.assign(contrast="rejection"), parts,
                         [{**specs[1], "contrast": "rejection"}], model="m", ratings=ratings)
