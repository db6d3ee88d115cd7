"""The part of Brevo's template language the fake fills in: `{{ params.<name> }}`, from
the request's `params` and each message version's own.

As Brevo documents it ("Disable auto-escaping and display double curly brackets in your
emails", help.brevo.com): the HTML (and JS) content of every variable is escaped by
default, and `{% autoescape off %}...{% endautoescape %}` prints the variables inside it
as they are. A param the message does not give prints nothing. Content without `{{` is
left as it is. A text is split once into literal runs and placeholders, and each
version joins its own values in.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from functools import lru_cache

_BLOCK = re.compile(r"{%\s*autoescape\s+off\s*%}(.*?){%\s*endautoescape\s*%}", re.DOTALL)
_PARAM = re.compile(r"{{\s*params\.([A-Za-z0-9_]+)\s*}}")

# A compiled text: literal runs, and placeholders as (name, escaped).
Part = str | tuple[str, bool]


def fill(text: str, params: Mapping[str, object]) -> str:
    """`text` with its placeholders filled in from `params`."""
    if "{{" not in text:
        return text
    out = []
    for part in _compile(text):
        if isinstance(part, str):
            out.append(part)
            continue
        name, escaped = part
        value = params.get(name)
        shown = "" if value is None else str(value)
        out.append(html.escape(shown) if escaped else shown)
    return "".join(out)


@lru_cache(maxsize=64)
def _compile(text: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    at = 0
    for block in _BLOCK.finditer(text):
        parts += _placeholders(text[at : block.start()], escaped=True)
        parts += _placeholders(block.group(1), escaped=False)
        at = block.end()
    parts += _placeholders(text[at:], escaped=True)
    return tuple(parts)


def _placeholders(text: str, *, escaped: bool) -> list[Part]:
    parts: list[Part] = []
    at = 0
    for found in _PARAM.finditer(text):
        parts.append(text[at : found.start()])
        parts.append((found.group(1), escaped))
        at = found.end()
    parts.append(text[at:])
    return parts
