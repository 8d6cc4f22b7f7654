"""A dead letter's reason with its particulars removed, so that alike failures count together:
in `botwatch dlq list --summary`, and as the dead-letter documents' ``reason_class`` (a
keyword: the reasons themselves, holding values and job messages, were nearly one per
document, so a chart of dead letters by reason had a bar each)."""

from __future__ import annotations

import re
from typing import Final

from schemas.event import RULES

# A quote opens after no letter (not the one of "event's") and closes before none.
_QUOTED: Final = re.compile(r"(?<!\w)'[^']*'(?!\w)|\"[^\"]*\"")
_NUMBER: Final = re.compile(r"\b\d+(?:\.\d+)?\b")
_GOT: Final = re.compile(r",? got .*$", re.DOTALL)
# The contract's rule texts are kept as they are (``RFC 3339``, ``[A-Za-z0-9]``), longest first.
_RULES: Final = tuple(sorted(RULES, key=len, reverse=True))
REASON_CLASS_CHARS: Final = 120


def reason_class(reason: str) -> str:
    """A reason with its particulars removed, so that alike failures count together:
    ``event_id: must be a non-empty string of at most 128 characters, got ''`` ->
    ``event_id: must be a non-empty string of at most 128 characters``; quoted text and
    numbers outside the contract's rule texts become ``'…'`` and ``N``."""
    text = _GOT.sub("", reason.splitlines()[0] if reason else "")
    rule = next((r for r in _RULES if r in text), "")
    head, _, tail = text.partition(rule) if rule else (text, "", "")
    text = (_particulars(head) + rule + _particulars(tail)).strip()
    if len(text) > REASON_CLASS_CHARS:
        text = text[: REASON_CLASS_CHARS - 1] + "…"
    return text or "(no reason)"


def _particulars(text: str) -> str:
    return _NUMBER.sub("N", _QUOTED.sub("'…'", text))
