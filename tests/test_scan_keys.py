"""The sets of conditions scans hold, as scan-key patterns (the workflow's map rules)."""

from __future__ import annotations

import itertools
import re

from pipeline.design import load_design
from pipeline.scan_keys import condition_sets, scan_key_pattern


def _design(conditions: dict) -> object:
    first, second = list(conditions)[:2]
    return load_design({"design": {"conditions": conditions, "contrasts": {
        "c": {"baseline": first, "condition": second}}}})


def _key(task: str, ses: str | None, run: str | None = None) -> str:
    stem = "sub-01" + (f"_ses-{ses}" if ses else "") + f"_task-{task}" \
        + (f"_run-{run}" if run else "")
    return f"sub-01/{f'ses-{ses}/' if ses else ''}pet/{stem}"


def _matching(sets, key: str) -> list[tuple[str, ...]]:
    return [names for names, pattern in sets if re.fullmatch(pattern, key)]


def test_within_scan_design_one_set_per_task():
    """The default design: rejection scans hold rejbase and rejection, acceptance scans
    accbase and acceptance; a scan of another task holds none."""
    sets = condition_sets(_design({
        "rejbase": {"task": "rejection", "window": [5, 45]},
        "rejection": {"task": "rejection", "window": [45, 90]},
        "accbase": {"task": "acceptance", "window": [5, 45]},
        "acceptance": {"task": "acceptance", "window": [45, 90]}}))
    assert [names for names, _ in sets] == [("rejbase", "rejection"), ("accbase", "acceptance")]
    assert _matching(sets, _key("rejection", None)) == [("rejbase", "rejection")]
    assert _matching(sets, _key("acceptance", "2", run="1")) == [("accbase", "acceptance")]
    assert _matching(sets, _key("rest", None)) == []
    assert _matching(sets, _key("rejectionx", None)) == []  # a longer task label


def test_sessions_give_each_key_exactly_the_conditions_it_matches():
    """With conditions bound to sessions, every key (task, session or none, run or none)
    matches exactly one set, the one Condition.matches gives, or none when it holds none;
    a session whose label starts with a named one (10 vs 1) is not taken for it."""
    design = _design({
        "any": {"task": "t"},
        "first": {"task": "t", "session": "1"},
        "second": {"task": "t", "session": "2"},
        "other": {"task": "u", "session": "1"}})
    sets = condition_sets(design)
    for task, ses, run in itertools.product(["t", "u", "v"], [None, "1", "2", "10", "a1"],
                                            [None, "3"]):
        held = tuple(c.name for c in design.conditions.values() if c.matches(task, ses))
        assert _matching(sets, _key(task, ses, run)) == ([held] if held else []), \
            (task, ses, run)


def test_scan_key_pattern_escapes_labels():
    """Labels go into the pattern literally."""
    pattern = scan_key_pattern("a1", session="2", other_sessions=["x"])
    assert re.fullmatch(pattern, _key("a1", "2"))
    assert not re.fullmatch(pattern, _key("a1", None))
    assert not re.fullmatch(scan_key_pattern("a1", other_sessions=["2"]), _key("a1", "2"))
