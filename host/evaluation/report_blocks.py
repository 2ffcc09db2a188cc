"""A report as a list of blocks (headings, paragraphs, tables, figures), rendered as Markdown
or as one HTML page.

Markdown links the PNG files beside it; HTML embeds them (base64) so the one file can be mailed
around.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    """A heading of ``level`` 1-4."""

    level: int
    text: str


@dataclass
class Para:
    """A paragraph of plain text."""

    text: str


@dataclass
class Table:
    """A table of text cells; ``right`` names the columns aligned right (numbers)."""

    header: list[str]
    rows: list[list[str]]
    right: tuple[int, ...] = ()  # columns aligned right (numbers)


@dataclass
class Figure:
    """A PNG figure in the report's folder, with its alternative text."""

    path: Path
    alt: str


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def _md(text: str) -> str:
    # Backslash-escape what Markdown would read as markup or raw HTML; a line break ends a cell.
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def to_markdown(blocks: list, out_dir: Path) -> str:
    """``blocks`` as Markdown, figures linked relative to ``out_dir``."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, Para):
            lines += [_md(block.text), ""]
        elif isinstance(block, Table):
            align = ["---:" if i in block.right else "---" for i in range(len(block.header))]
            lines.append("| " + " | ".join(_md(h) for h in block.header) + " |")
            lines.append("| " + " | ".join(align) + " |")
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Figure):
            rel = block.path.relative_to(out_dir).as_posix()
            lines += [f"![{_md(block.alt)}]({rel})", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
table.facts td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""


def to_html(blocks: list, title: str) -> str:
    """``blocks`` as one HTML page titled ``title``, figures embedded."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            # A table without a header is a list of facts: keep each fact's name on one line.
            parts.append("<table>" if any(block.header) else '<table class="facts">')
            if any(block.header):
                parts.append(
                    "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr>"
                )
            for row in block.rows:
                cells = (
                    f'<td class="num">{esc(c)}</td>' if i in block.right else f"<td>{esc(c)}</td>"
                    for i, c in enumerate(row)
                )
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{esc(block.alt)}">')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
