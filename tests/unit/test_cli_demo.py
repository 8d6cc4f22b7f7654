"""``botwatch demo`` refuses a port where something already listens, instead of reading
another worker's counters and printing a wrong summary; its summary lists the alerts."""

from __future__ import annotations

import socket

import pytest

from botwatch.commands.common import BotwatchError
from botwatch.commands.demo import DEMO_RULES, _print_alerts, _refuse_taken_port
from streams.alerts import load_rules


def test_the_demo_refuses_a_port_already_listened_on_and_takes_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BotwatchError, match=rf"already listens on 127\.0\.0\.1:{port}"):
            _refuse_taken_port("127.0.0.1", port)
    _refuse_taken_port("127.0.0.1", port)  # closed now: nothing listens


def test_the_demo_rule_loads_and_the_summary_says_when_each_alert_fired_and_resolved(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (rule,) = load_rules(DEMO_RULES)
    assert (rule.name, rule.for_ms, rule.keep_firing_ms) == ("demo-error-rate", 0, 0)
    alerts = [
        {"bot_id": "bot-002", "rule": rule.name, "severity": "warning",
         "starts_at": "2026-12-07T10:01:00Z", "ends_at": "2026-12-07T10:02:00Z"},
        {"bot_id": "bot-001", "rule": rule.name, "severity": "warning",
         "starts_at": "2026-12-07T10:02:00Z", "ends_at": None},
    ]  # fmt: skip
    _print_alerts(alerts, str(DEMO_RULES))
    out = capsys.readouterr().out
    assert f"alerts (the demo's rule: {DEMO_RULES}):" in out
    lines = [line.split() for line in out.splitlines()]
    fired, resolved = "2026-12-07T10:01:00Z", "2026-12-07T10:02:00Z"
    assert ["bot-002", rule.name, "warning", fired, resolved] in lines
    assert ["bot-001", rule.name, "warning", "2026-12-07T10:02:00Z", "-", "(firing)"] in lines
    _print_alerts([], "/etc/botwatch/rules.yaml")
    assert "alerts: none fired (the rules: /etc/botwatch/rules.yaml)" in capsys.readouterr().out
