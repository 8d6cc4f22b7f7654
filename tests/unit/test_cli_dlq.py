"""``botwatch dlq list``: the table and the summary redact secrets in reasons and bots, as
the dead-letter index does (a table gets pasted into tickets)."""

from __future__ import annotations

import itertools

from botwatch.commands.dlq import _redacted_summary, _row, _summary_text
from botwatch.settings import Settings
from sinks.config import SinkConfig
from sinks.redact import Redactor
from streams.deadletters.records import Letter
from streams.deadletters.select import Summary

R = Redactor(SinkConfig().redact_keys)
OFFSETS = itertools.count()


def letter(reason: str, key: bytes = b"bot-1") -> Letter:
    offset = next(OFFSETS)  # another record each (one written twice is counted once)
    return Letter(
        "botwatch.dlq", 0, 7, 1_795_428_000_000, key, b"{}", (), "validate", reason, "",
        "botwatch.events", 1, offset, 1_795_428_000_000, "2026-11-23T10:00:00Z", 0,
    )  # fmt: skip


def test_a_row_redacts_the_secret_in_a_reason() -> None:
    # The contract's rule text is kept whole; what the field held goes.
    reason = "password: is not allowed (unknown fields belong in meta), got 'hunter2'"
    assert _row(letter(reason), R)[-1] == (
        "password: is not allowed (unknown fields belong in meta), got [REDACTED]"
    )
    assert _row(letter("decode: login password=hunter2"), R)[-1] == (
        "decode: login password=[REDACTED]"
    )
    assert _row(letter("duration_ms: must be >= 0, got -1"), R)[-1] == (
        "duration_ms: must be >= 0, got -1"
    )


def test_the_summary_redacts_reasons_and_bots_and_counts_alike_ones_together() -> None:
    summary = Summary()
    for reason, key in (
        ("token=abc in message", b"Bearer SEKRET1"),
        ("token=def in message", b"Bearer SEKRET2"),
        ("bot_id: bad", b"bot-1"),
    ):
        summary.add(letter(reason, key))
    _redacted_summary(summary, R)
    assert dict(summary.reasons) == {"token=[REDACTED] in message": 2, "bot_id: bad": 1}
    assert dict(summary.bots) == {"Bearer [REDACTED]": 2, "bot-1": 1}


def test_every_summary_prints_redacted_and_escaped() -> None:
    """replay --dry-run and import --dry-run printed the histogram as it was."""
    summary = Summary().extend([letter("token=abc in message", b"x\x1b[2J Bearer SEKRET1")])
    text = _summary_text(summary, Settings.load(environ={}))
    assert "SEKRET1" not in text and "abc" not in text and "\x1b" not in text
    assert "x\\x1b[2J Bearer [REDACTED]" in text
