"""``botwatch alerts`` tables: what tells two alerts of one rule and bot apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botwatch.commands.alerts import _no_rule_matches, _silence_row, _with_error_types
from streams.alerts import Silence

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


def test_time_left_of_a_silence_is_in_whole_seconds() -> None:
    s = Silence("s1", "bot-down", "b*", 7_200_000, "deploy", "ann", 0)
    assert _silence_row(s, 4_274)[4] == "1h59m56s"  # 1h59m55.726s, rounded up
    assert _silence_row(s, 7_199_999)[4] == "1s"  # in force: never "0s"
    assert _silence_row(s, 7_200_000)[4] == "expired"


def test_a_silence_whose_rule_matches_no_rule_is_warned_of(tmp_path: Path) -> None:
    assert _no_rule_matches("bot-down", None) == ""  # a default rule
    assert _no_rule_matches("bot-*", None) == ""
    warning = _no_rule_matches("bot-dwon", None)
    assert warning.startswith("warning: --rule 'bot-dwon' matches no rule of the default rules (")
    assert "bot-down" in warning
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: mine, kind: absence, severity: critical, for: 5m}\n")
    assert _no_rule_matches("bot-down", str(rules)).startswith(
        f"warning: --rule 'bot-down' matches no rule of {rules} (mine)"
    )
    assert _no_rule_matches("x", str(tmp_path / "missing.yaml")) == ""  # cannot tell here


def test_silence_checks_the_rule_against_the_file_given_with_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers started with `--rules FILE` (as the README offers) had every silence of their
    # own rules warned of as matching nothing: the check read only BOTWATCH_ALERT_RULES.
    from click.testing import CliRunner

    from botwatch.cli import main
    from botwatch.commands import alerts as command

    published: list[Any] = []
    monkeypatch.setattr(command, "_publish", lambda _settings, records: published.extend(records))
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: oc-down, kind: absence, severity: critical, for: 5m}\n")
    args = ["alerts", "silence", "--rule", "oc-down", "--bot", "b", "--for", "1m", "--reason", "t"]
    env = {"BOTWATCH_ALERT_RULES": ""}
    with_file = CliRunner().invoke(main, [*args, "--rules", str(rules)], env=env)
    assert with_file.exit_code == 0, with_file.output
    assert "warning" not in with_file.output
    without = CliRunner().invoke(main, args, env=env)
    assert without.exit_code == 0, without.output
    assert "matches no rule of the default rules" in without.output
    assert "give their file with --rules" in without.output
    assert len(published) == 2


def test_alerts_list_shows_what_the_workers_that_answered_hold_and_names_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One worker down made the whole list fail: an on-call person saw nothing at all.
    import urllib.error

    from click.testing import CliRunner

    from botwatch.cli import main
    from botwatch.commands import alerts as command

    firing = {
        "rule": "oc-down",
        "bot_id": "b1",
        "severity": "critical",
        "state": "firing",
        "value": 222.5,
        "threshold": 90.0,
        "window": "",
        "starts_at": "2026-12-07T22:00:00Z",
        "labels": {},
    }

    def fetch(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
        if url.endswith(":1"):
            raise urllib.error.URLError("connection refused")
        if url.endswith(":2"):
            raise urllib.error.HTTPError(url, 500, "Server got itself in trouble", {}, None)  # type: ignore[arg-type]
        return {"alerts": [firing]}

    monkeypatch.setattr(command, "fetch_active", fetch)
    urls = ["--worker", "http://w:1", "--worker", "http://w:2", "--worker", "http://w:3"]
    result = CliRunner().invoke(main, ["alerts", "list", *urls])
    assert result.exit_code == 1
    assert "oc-down" in result.output and "222.5" in result.output
    assert "warning: no worker answered at http://w:1/alerts (<urlopen error connection " in (
        result.output
    )
    assert "warning: the worker at http://w:2 answered /alerts with HTTP 500: the alerts" in (
        result.output
    )
    none = CliRunner().invoke(main, ["alerts", "list", *urls[:4]])
    assert none.exit_code != 0
    assert "error: no worker answered at http://w:1/alerts" in none.output
    assert "the worker at http://w:2 answered /alerts with HTTP 500" in none.output


def test_history_takes_globs_where_a_name_has_them_and_terms_elsewhere() -> None:
    from botwatch.commands.alerts import history_query

    filters = history_query(0, "bot-00*", "errors", "firing", 10)["query"]["bool"]["filter"]
    assert filters[1:] == [
        {"wildcard": {"bot_id": {"value": "bot-00*"}}},
        {"term": {"rule": "errors"}},
        {"term": {"state": "firing"}},
    ]
    [_, rule] = history_query(0, None, "err?rs", None, 10)["query"]["bool"]["filter"]
    assert rule == {"wildcard": {"rule": {"value": "err?rs"}}}
