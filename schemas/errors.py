"""Why a record is not an event: one exception that names the stage, the field and the rule.

The stream worker turns these into dead-letter headers (``botwatch.dlq.stage`` and
``botwatch.dlq.reason``), so the text has to be precise enough to fix the producer from.
"""

from __future__ import annotations

import reprlib
from typing import Any, ClassVar, Literal

# Reasons end up in Kafka headers and log lines: keep the offending value short.
_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40
_REPR.maxdict = 4
_REPR.maxlist = 4
_REPR.maxtuple = 4
_REPR.maxset = 4
_REPR.maxlevel = 2
MAX_GOT_CHARS = 80
_PLAIN = frozenset({float, bool, type(None)})


def short_repr(value: Any) -> str:
    """A repr of ``value`` of at most ``MAX_GOT_CHARS`` characters, cheap even for huge values."""
    kind = type(value)
    if kind in _PLAIN or (kind is str and len(value) <= _REPR.maxstring):
        return repr(value)  # the common case, without reprlib's dispatch
    if kind is int:
        # repr() of an int beyond 4300 digits raises, and a long one says little anyway.
        return repr(value) if -(10**30) < value < 10**30 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, bytes | bytearray | memoryview):
        # reprlib has no bytes rule and would repr the whole buffer before cutting it.
        head = bytes(value[:MAX_GOT_CHARS])
        text = repr(head) + ("..." if len(value) > len(head) else "")
    else:
        text = _REPR.repr(value)
    return text if len(text) <= MAX_GOT_CHARS else text[: MAX_GOT_CHARS - 3] + "..."


class EventError(ValueError):
    """A record that is not a valid event; catch this one, raise the two subclasses.

    ``path`` is the field ("" for the whole record, "error.type" inside objects), ``rule``
    the requirement it breaks and ``got`` a short repr of what was there (None when there
    was nothing, e.g. a missing field).
    """

    stage: ClassVar[Literal["decode", "validate"]]

    def __init__(self, path: str, rule: str, got: str | None = None) -> None:
        super().__init__(path, rule, got)  # as args, so that pickling round-trips
        self.path = path
        self.rule = rule
        self.got = got

    @property
    def reason(self) -> str:
        text = f"{self.path or 'record'}: {self.rule}"
        return text if self.got is None else f"{text}, got {self.got}"

    def __str__(self) -> str:
        return self.reason


class EventDecodeError(EventError):
    """The record bytes are not UTF-8, not JSON, or JSON but not an object."""

    stage = "decode"


class EventValidationError(EventError):
    """The record is a JSON object that breaks a rule of the event contract."""

    stage = "validate"
