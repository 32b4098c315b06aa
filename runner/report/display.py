"""Text from configs and databases, made safe to show: no terminal escape codes or line breaks in a
table cell, no `|` breaking a Markdown table (HTML is escaped by the template engine)."""
from __future__ import annotations

import html
import unicodedata


def terminal(text: object) -> str:
    """`text` with every control or format character shown as an escape (\\x1b, \\n, ...)."""
    return "".join(ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def markdown_cell(text: object) -> str:
    """A table cell: terminal-safe, with pipes and backticks escaped, and HTML too (Markdown renders raw
    HTML: a `<script>` must stay text, and `vector<8xf32>` must stay visible)."""
    return html.escape(terminal(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`"), quote=False)
