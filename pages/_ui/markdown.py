"""Text from files and users shown on pages: Streamlit renders labels, captions and messages as
Markdown, so such values are escaped to read literally (no image fetched, no link, no styling)."""

from __future__ import annotations

import re

# A backslash escapes any ASCII punctuation in CommonMark. Escaped: what opens images, links,
# autolinks (<…>, http://, www.), emphasis, code, strike-through, LaTeX and Streamlit's
# :color[…] directives; block syntax only where it acts, at the start. Punctuation that does
# nothing alone (parentheses, colons, dots, an underscore inside a word) is left as typed.
_SPECIAL = re.compile(r"([\\`*\[\]<>$~])")
_LONE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_AUTOLINK = re.compile(r"(?i)(\w)(://)|\b(www)\.")
_BLOCK_START = re.compile(r"^([-+]|#{1,6})(?=\s|$)|^(\d+)([.)])(?=\s|$)")  # list, heading


def escape_markdown(value: object) -> str:
    """`value` as text that Markdown shows literally, on one line."""
    text = " ".join(str(value).splitlines()).lstrip()
    text = _LONE_UNDERSCORE.sub(r"\\_", _SPECIAL.sub(r"\\\1", text))
    text = _AUTOLINK.sub(lambda m: f"{m[1]}\\://" if m[1] else f"{m[3]}\\.", text)
    return _BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)
