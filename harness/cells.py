"""Text from users (captions, run names, model names, claims) placed into files other programs
interpret: a spreadsheet cell, a Markdown table cell."""

from __future__ import annotations

import html

# A spreadsheet evaluates a cell starting with one of these as a formula (=HYPERLINK(...), @SUM).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(text) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text. Numbers stay numbers ("-0.5")."""
    text = str(text)
    if text[:1] in _FORMULA_START:
        try:
            float(text)
            return text
        except ValueError:
            return "'" + text
    return text


def markdown_cell(text) -> str:
    """``text`` as one Markdown table cell: HTML shown as text, ``|`` kept inside the cell, line
    breaks (which would end the row) turned into spaces."""
    text = html.escape(str(text), quote=False).replace("|", "\\|")
    return " ".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
