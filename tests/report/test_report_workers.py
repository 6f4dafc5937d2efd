"""The report's figures drawn in worker processes (pipeline.report.drawing): the same report
as drawing them in the report's own process; failures handled as there."""

from __future__ import annotations

import base64
import re
import warnings
from concurrent.futures import wait
from pathlib import Path

import figure_helpers as helpers
import pytest

from pipeline.report import write_report
from pipeline.report.blocks import BuildContext
from pipeline.report.drawing import FigurePool

# matplotlib names SVG clip paths and markers by a hash of a random salt: the same figure
# gets other ids in every rendering, in one process as in two
_SVG_IDS = re.compile(rb"\b([a-z]+)[0-9a-f]{10}\b")


def _normalized(data: bytes, suffix: str) -> bytes:
    return _SVG_IDS.sub(rb"\1<id>", data) if suffix == "svg" else data


def _page(html: Path) -> str:
    """The page with each embedded image replaced by its normalized bytes' length and hash,
    and without the creation time."""
    import hashlib

    def one(match):
        kind, payload = match.group(1), base64.b64decode(match.group(2))
        digest = hashlib.sha256(_normalized(payload, "svg" if "svg" in kind else "png"))
        return f"data:{kind};{digest.hexdigest()}"

    text = re.sub(r"data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)", one, html.read_text())
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<created>", text)


def test_report_drawn_by_workers_equals_the_one_drawn_in_process(synthetic_results, tmp_path):
    """workers=2 writes the same figure files (PNG byte for byte, SVG up to matplotlib's
    random ids) and the same page as workers=1, and no other file."""
    out, config = synthetic_results
    pages, figures = {}, {}
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        html = write_report(out, config, folder / "report.html", methods_md=folder / "m.md",
                            figure_dir=folder / "figures", workers=workers)
        pages[workers] = _page(html)
        figures[workers] = {p.relative_to(folder): _normalized(p.read_bytes(), p.suffix[1:])
                            for p in sorted(folder.rglob("*")) if p.is_file()}
    assert len(figures[1]) > 10  # the study's figures and the report itself
    assert figures[2].keys() == figures[1].keys()
    for name, data in figures[1].items():
        if name.suffix != ".html":
            assert figures[2][name] == data, name
    assert pages[2] == pages[1]


@pytest.fixture(scope="module")
def pool():
    with FigurePool(1) as workers:
        yield workers


def test_figure_errors_in_workers_become_error_blocks_in_order(tmp_path, pool):
    """A figure that raises in a worker becomes the error block drawing it here gives; the
    figures around it are written, their blocks filled in the order asked for."""
    ctx = BuildContext(figure_dir=tmp_path, pool=pool)
    first = ctx.figure("first", helpers.line, [1, 2, 3], fmt="png", title="First")
    bad = ctx.figure("bad", helpers.planted_failure, [1], title="Bad")
    last = ctx.figure("last", helpers.line, [3, 2, 1], fmt="svg", title="Last")
    assert first["src"] == "" and ctx.files == []  # filled by finish()
    ctx.finish()
    assert [b["kind"] for b in (first, bad, last)] == ["figure", "error", "figure"]
    assert "RuntimeError: planted failure" in bad["message"]
    assert ctx.errors == [("Bad", "RuntimeError: planted failure")]
    assert ctx.files == [tmp_path / "first.png", tmp_path / "last.svg"]
    here = BuildContext(figure_dir=tmp_path / "here")
    (tmp_path / "here").mkdir()
    alone = here.figure("first", helpers.line, [1, 2, 3], fmt="png", title="First")
    assert alone == first
    assert (tmp_path / "first.png").read_bytes() == (tmp_path / "here" / "first.png").read_bytes()
    assert here.figure("bad", helpers.planted_failure, [1], title="Bad") == bad


def test_a_dead_worker_or_unpicklable_arguments_are_drawn_here(tmp_path, caplog):
    """A worker process that dies (e.g. killed for memory) does not lose its figures: they
    are drawn in the report's process, with a warning in the log; arguments that cannot be
    sent to a process are drawn here at once."""
    with FigurePool(1) as pool:
        ctx = BuildContext(figure_dir=tmp_path, pool=pool)
        dead = ctx.figure("dead", helpers.dies_in_a_worker, [1, 2], fmt="png")
        wait([ctx._pending[-1].future])  # the idle worker takes it (and dies) first
        local = ctx.figure("local", helpers.line, [1, 2], colour=lambda: "C1", fmt="png")
        # a lambda cannot be pickled: drawn here, before finish()
        assert local["src"].startswith("data:image/png;base64,")
        assert ctx.files == [tmp_path / "local.png"]
        with caplog.at_level("WARNING", logger="pipeline.report"):
            ctx.finish()
    assert dead["kind"] == "figure" and dead["src"].startswith("data:image/png;base64,")
    assert ctx.files == [tmp_path / "local.png", tmp_path / "dead.png"]
    assert any("drawing process stopped" in r.getMessage() for r in caplog.records)


def test_warnings_follow_the_filters_where_the_figure_was_asked_for(tmp_path, pool):
    """A warning raised while drawing in a worker is shown by the report's process, unless
    the caller's filters ignore it (as scans.py does for scans without fits)."""
    ctx = BuildContext(figure_dir=tmp_path, pool=pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ctx.figure("quiet", helpers.warns, [1, 2])
    ctx.figure("loud", helpers.warns, [1, 2])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ctx.finish()
    assert [str(w.message) for w in seen] == ["planted warning"]
    assert seen[0].category is UserWarning
