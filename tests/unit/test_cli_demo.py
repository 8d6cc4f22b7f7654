"""``botwatch demo`` refuses a port where something already listens, instead of reading
another worker's counters and printing a wrong summary; its summary lists the alerts."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from botwatch.commands.common import BotwatchError
from botwatch.commands.demo import (
    DEMO_NAMES,
    DEMO_RULES,
    _one_demo_at_a_time,
    _print_alerts,
    _refuse_taken_port,
    demo_env,
)
from botwatch.settings import Settings
from streams.alerts import load_rules


def test_the_demo_refuses_a_port_already_listened_on_and_takes_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BotwatchError, match=rf"already listens on 127\.0\.0\.1:{port}"):
            _refuse_taken_port("127.0.0.1", port)
    _refuse_taken_port("127.0.0.1", port)  # closed now: nothing listens


def test_the_demo_keeps_to_names_of_its_own_unless_the_environment_gives_them() -> None:
    """With a pipeline's names (the defaults) the demo's worker joined its consumer group,
    and its fake bots stayed in its state and indices, paged as down for days."""
    settings = Settings.load(environ={"BOTWATCH_KAFKA_BOOTSTRAP": "k:1"})
    env, own = demo_env(settings, {"PATH": "/bin"})
    assert own.items() >= DEMO_NAMES.items()
    assert env["BOTWATCH_APP_ID"] == "botwatch-demo" != Settings.load(environ={}).streams.app_id
    assert env["BOTWATCH_INDEX_PREFIX"] == "botwatch-demo"
    assert env["BOTWATCH_STATE_DIR"] == str(settings.streams.state_dir / "demo")
    assert int(env["BOTWATCH_WEB_PORT"]) != settings.streams.web_port
    assert (env["BOTWATCH_KAFKA_BOOTSTRAP"], env["PATH"]) == ("k:1", "/bin")  # flags carry over
    mine = {"BOTWATCH_INDEX_PREFIX": "mine", "BOTWATCH_WEB_PORT": "7001",
            "BOTWATCH_ALERT_WEBHOOK_URL": "https://hooks.example/on-call"}  # fmt: skip
    env, own = demo_env(settings, mine)
    assert env["BOTWATCH_ALERT_WEBHOOK_URL"] == "" == env["BOTWATCH_SLACK_WEBHOOK_URL"]
    assert (env["BOTWATCH_INDEX_PREFIX"], env["BOTWATCH_WEB_PORT"]) == ("mine", "7001")
    assert "BOTWATCH_INDEX_PREFIX" not in own and own["BOTWATCH_APP_ID"] == "botwatch-demo"


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


def test_one_demo_runs_at_a_time_per_state_directory(tmp_path: Path) -> None:
    """Two at once shared a consumer group and topics: each counted the other's records."""
    held = _one_demo_at_a_time(tmp_path)
    try:
        with pytest.raises(BotwatchError, match="another `botwatch demo` runs"):
            _one_demo_at_a_time(tmp_path)
    finally:
        os.close(held)
    os.close(_one_demo_at_a_time(tmp_path))  # free again
