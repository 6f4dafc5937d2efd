"""``petbp check`` of design.groups and phenotype ratings: summary lines and one message
per bad input, naming the file."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from factories import make_bids

from pipeline.cli import check, main

SUBJECTS = ("01", "02", "03", "04", "05", "06")


@pytest.fixture(autouse=True)
def _no_windows(monkeypatch):
    """The factory's 20-min scans do not hold the 45-90 min windows (checked elsewhere)."""
    monkeypatch.setattr(check, "_design_summary", lambda *args, **kwargs: [])


def _study(tmp_path, groups=("HC",) * 3 + ("MDD",) * 3, ratings=True):
    root = make_bids(tmp_path / "bids", subjects=SUBJECTS,
                     participants={"participant_id": [f"sub-{s}" for s in SUBJECTS],
                                   "group": list(groups), "age": [30] * 6})
    if ratings:
        (root / "phenotype").mkdir()
        pd.DataFrame({"participant_id": [f"sub-{s}" for s in (*SUBJECTS, "99")],
                      "rejbase": 50.0, "rejection": 45.0, "accbase": 50.0,
                      "acceptance": 58.0}).to_csv(root / "phenotype" / "desire.tsv",
                                                  sep="\t", index=False)
    config = yaml.safe_load(open("config/groups.yaml"))
    config.pop("bids_dir")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return root, path


def test_check_summarizes_groups_and_ratings(tmp_path, capsys):
    """Groups with their sizes and the rating file's columns; a rated participant without
    scans is named as left out; the rating score is not asked of participants.tsv."""
    root, config = _study(tmp_path)
    status = main(["check", str(root), "--config", str(config), "--headers-only"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "groups (group): HC 3, MDD 3; reference HC" in out
    assert "ratings desire: 7 participants" in out and "without scans (left out): sub-99" in out


def test_check_reports_small_group_and_missing_rating_column(tmp_path, capsys):
    """A level with 2 participants and a rating file without the acceptance column: two
    problems, each naming its file and the fix."""
    root, config = _study(tmp_path, groups=("HC",) * 4 + ("MDD",) * 2)
    table = pd.read_csv(root / "phenotype" / "desire.tsv", sep="\t")
    table.drop(columns="acceptance").to_csv(root / "phenotype" / "desire.tsv", sep="\t",
                                            index=False)
    status = main(["check", str(root), "--config", str(config), "--headers-only"])
    _, err = capsys.readouterr()
    assert status == 1
    assert "participants.tsv: group 'MDD' (column 'group') has 2 participant(s)" in err
    assert "desire.tsv: no column for condition(s) acceptance" in err
    assert "Traceback" not in err
