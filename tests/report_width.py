"""Does a published report fit the Prefect UI at 1280 px? Markdown is rendered to HTML (the `markdown`
package, with the UI's tables and fenced code) and measured there, as a reader sees it: code lines against
report_layout.WIDTH, paths shown in prose against PATH_WIDTH (a link's target is not shown), and each table
up to its last column's header against TABLE_WIDTH. Table artifacts are measured the same way."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import markdown

from handgesture.report_layout import PATH_WIDTH, TABLE_WIDTH, WIDTH

CELL_PADDING = 3  # characters a table cell's padding and border take


def artifact_problems(kind: str, data: Any, key: str = "") -> list[str]:
    """What of a stored artifact would not show whole: empty when it fits."""
    if kind == "markdown":
        return [f"{key}: {p}" for p in markdown_problems(data)]
    if kind == "table":
        rows = json.loads(data) if isinstance(data, str) else data
        return [f"{key}: {p}" for p in table_problems(rows)]
    return []  # links and progress bars are one short line


def markdown_problems(text: str) -> list[str]:
    page = _Page()
    page.feed(markdown.markdown(text, extensions=["tables", "fenced_code"]))
    problems = [
        f"code line of {len(line)} > {WIDTH}: {line!r}" for line in page.code_lines if len(line) > WIDTH
    ]
    problems += [
        f"path of {len(w)} > {PATH_WIDTH} in prose: {w!r}" for w in page.prose_words if _long_path(w)
    ]
    for header, rows in page.tables:
        problems += table_width_problems(header, rows)
    return problems


def table_problems(rows: list[dict[str, Any]]) -> list[str]:
    """A table artifact: its keys are the header, as the UI shows them."""
    if not rows:
        return []
    header = list(rows[0])
    return table_width_problems(header, [[_cell(row.get(name)) for name in header] for row in rows])


def table_width_problems(header: list[str], rows: list[list[str]]) -> list[str]:
    """Every header must start and show inside TABLE_WIDTH; the last column may run on (full URIs sit
    there, and a reader scrolls to their end)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    reach = sum(widths[:-1]) + len(header[-1]) + CELL_PADDING * len(header)
    if reach <= TABLE_WIDTH:
        return []
    return [f"table {header} reaches {reach} > {TABLE_WIDTH} characters before its last header ends"]


def _long_path(word: str) -> bool:
    return "/" in word and len(word) > PATH_WIDTH


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


class _Page(HTMLParser):
    """The rendered report's code lines, the words shown in prose (link text, not targets), its tables."""

    def __init__(self):
        super().__init__()
        self.code_lines: list[str] = []
        self.prose_words: list[str] = []
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self._pre = ""
        self._in_pre = False
        self._row: list[str] | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "pre":
            self._in_pre, self._pre = True, ""
        elif tag == "table":
            self.tables.append(([], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False
            self.code_lines += self._pre.rstrip("\n").split("\n")
        elif tag in ("td", "th") and self._row is not None:
            self._row.append((self._cell or "").strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            header, rows = self.tables[-1]
            if header:
                rows.append(self._row)
            else:
                header.extend(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in_pre:
            self._pre += data
            return
        if self._cell is not None:
            self._cell += data
        self.prose_words += data.split()
