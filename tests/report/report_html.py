"""Parse petbp's report.html: sections, tables (text and data-value), URLs, images, errors."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

__all__ = ["ReportParser", "check_table_equals_tsv", "parse"]


class ReportParser(HTMLParser):
    """Collects section ids, tables (cell text and data-value), URLs, images and errors."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.sections: list[str] = []
        self.urls: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.headers: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self._table: str | None = None
        self._cell: list | None = None
        self._in_th = False
        self._in_error = False
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "section":
            self.sections.append(attrs["id"])
        for key in ("src", "href"):
            if key in attrs:
                self.urls.append((key, attrs[key]))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self._table = attrs.get("id", f"table{len(self.tables)}")
            self.tables[self._table], self.headers[self._table] = [], []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "th":
            self._in_th, self._text = True, []
        elif tag == "td":
            self._cell, self._text = [attrs.get("data-value")], []
        elif tag == "div" and attrs.get("class") == "error":
            self._in_error, self._text = True, []

    def handle_data(self, data):
        self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "th" and self._in_th:
            self.headers[self._table].append("".join(self._text))
            self._in_th = False
        elif tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append(("".join(self._text), self._cell[0]))
            self._cell = None
        elif tag == "table":
            self.tables[self._table] = [r for r in self.tables[self._table] if r]
            self._table = None
        elif tag == "div" and self._in_error:
            self.errors.append("".join(self._text))
            self._in_error = False


def parse(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def check_table_equals_tsv(report: ReportParser, table_id: str, tsv: pd.DataFrame) -> None:
    """Every cell shows the TSV value: full precision in data-value, rounded in the text.

    The table may show a subset of the TSV's columns, in the TSV's order.
    """
    header, rows = report.headers[table_id], report.tables[table_id]
    assert header == [c for c in tsv.columns if c in header]
    tsv = tsv[header]
    assert len(rows) == len(tsv)
    for row, (_, expected) in zip(rows, tsv.iterrows(), strict=True):
        for (text, value), column in zip(row, tsv.columns, strict=True):
            want = expected[column]
            if pd.isna(want):
                assert text == "n/a"
            elif isinstance(want, str | bool) or (hasattr(want, "item") and isinstance(
                    want.item(), bool)):
                assert text == str(want)
            else:
                assert float(value) == float(want)  # exact: repr() round-trips a float
                digits = 3 if column.startswith("p") else 4  # at least, as shown
                shown = float(text)
                assert shown == pytest.approx(float(want), rel=10 ** (1 - digits), abs=1e-12)
