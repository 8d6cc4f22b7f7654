"""What the command line prints of producers' text: control characters never reach the
terminal as themselves (an escape sequence cleared the screen, a line break forged a row)."""

from __future__ import annotations

import pytest

from botwatch.commands.common import print_table, printable
from botwatch.commands.dlq import _show
from streams.deadletters.records import Letter


def test_printable_escapes_control_characters_and_keeps_the_rest() -> None:
    assert printable("Evil\x1b[2J\rRED\nFAKE\x85\u2028x\x7f") == (
        "Evil\\x1b[2J\\rRED\\nFAKE\\x85\\u2028x\\x7f"
    )
    assert printable("naïve ✓ 日本 tab\there") == "naïve ✓ 日本 tab\\there"
    assert printable("two\nlines\tand\x1b", lines=True) == "two\nlines\tand\\x1b"


def test_a_table_cell_with_a_line_break_stays_on_its_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table([("bot-1", "Evil\x1b[31mRED\nFAKE-LOG-LINE level=critical")], ("BOT", "TYPE"))
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.splitlines() == [
        "BOT    TYPE",
        "bot-1  Evil\\x1b[31mRED\\nFAKE-LOG-LINE level=critical",
    ]


def test_dlq_show_escapes_what_the_record_holds(capsys: pytest.CaptureFixture[str]) -> None:
    value = b'{"bot_id": "x\\u001b[31mRED\\nFAKE"}'
    letter = Letter(
        "botwatch.dlq", 0, 7, 1_795_428_000_000, None, value, (("h", b"a\x1bb"),), "validate",
        "event_id: is required", "", "botwatch.events", 1, 2, 1_795_428_000_000,
        "2026-11-23T10:00:00Z", 0,
    )  # fmt: skip
    _show(letter)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "bot:             x\\x1b[31mRED\\nFAKE" in out.splitlines()
    assert "  h: a\\x1bb" in out.splitlines()


def test_dlq_show_prints_a_payload_with_a_key_given_twice_as_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pretty-printed from its parse, the key showed once: what OpenSearch refused was hidden."""
    value = b'{"bot_id": "b", "level": "info", "level": "error"}'
    letter = Letter(
        "botwatch.dlq", 0, 7, 1_795_428_000_000, b"b", value, (), "sink",
        "Duplicate field 'level'", "", "botwatch.events", 1, 2, 1_795_428_000_000,
        "2026-11-23T10:00:00Z", 0,
    )  # fmt: skip
    _show(letter)
    assert capsys.readouterr().out.endswith("payload:\n" + value.decode() + "\n")
