"""Recorded text as a person is shown it: the characters that would act written out.

A session key, a client's name or a message is whatever a caller sent. Shown
as it is, some of its characters act instead of showing: a terminal obeys an
escape sequence (``ESC [2J`` clears the screen, ``ESC ]0;...`` sets the
window's title), and a bidirectional control reorders the text around it
(the key ``invoice``, U+202E, ``gnp.exe`` reads as ``invoiceexe.png``).
:func:`written_out` writes each such character as its code point,
``[U+001B]``, so that what is shown is what was recorded, and nothing else.
The command line and the history browser both use it.
"""

from __future__ import annotations

import re

__all__ = ["BIDI_CONTROLS", "code_point", "written_out"]

#: The characters that reorder the text around them: the marks, embeddings,
#: overrides and isolates of Unicode's bidirectional algorithm (a regular
#: expression's character class, without its brackets).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"

#: The control characters, C0 (newline and tab among them), DEL and C1, and
#: the bidirectional controls.
_ACTING = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")

#: The same but the newline and the tab, which text shown as lines keeps.
_ACTING_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


def written_out(text: str, *, lines: bool = False) -> str:
    """``text`` with each character that would act written as ``[U+XXXX]``.

    Args:
        lines: keep newlines and tabs, for text shown as lines (a message);
            otherwise they are written out too, as in an identifier (a session
            key ``two\\nlines`` must not look like ``two lines``).
    """
    pattern = _ACTING_IN_LINES if lines else _ACTING
    if pattern.search(text) is None:
        return text
    return pattern.sub(code_point, text)


def code_point(found: re.Match[str]) -> str:
    """The character a pattern found, written as its code point: ``[U+202E]``."""
    return f"[U+{ord(found.group()):04X}]"
