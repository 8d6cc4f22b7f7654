"""``botwatch alerts`` tables: what tells two alerts of one rule and bot apart."""

from __future__ import annotations

from botwatch.commands.alerts import _with_error_types

HEADER = ("STATE", "RULE", "BOT", "VALUE")


def test_alerts_of_one_rule_and_bot_per_error_type_get_an_error_type_column() -> None:
    records = [
        {"labels": {"bot_id": "b", "error_type": "TimeoutError"}},
        {"labels": {"bot_id": "b", "error_type": "KeyError"}},
        {"labels": {"bot_id": "c"}},
    ]
    rows = [("firing", "r", "b", "3"), ("firing", "r", "b", "2"), ("pending", "s", "c", "1")]
    assert _with_error_types(records, rows, HEADER) == (
        [
            ("firing", "r", "b", "TimeoutError", "3"),
            ("firing", "r", "b", "KeyError", "2"),
            ("pending", "s", "c", "-", "1"),
        ],
        ("STATE", "RULE", "BOT", "ERROR TYPE", "VALUE"),
    )


def test_no_error_type_no_column() -> None:
    rows = [("firing", "r", "b", "3")]
    assert _with_error_types(
        [
            {"labels": {"bot_id": "b"}},
        ],
        rows,
        HEADER,
    ) == (rows, HEADER)
    assert _with_error_types([{}], rows, HEADER) == (rows, HEADER)  # an old record: no labels
