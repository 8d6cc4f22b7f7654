"""What each alert receiver is sent: Alertmanager v2 alerts, webhook v4, Slack messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sinks.receivers.payloads import (
    ZERO_TIME,
    AlertRecordError,
    alert_annotations,
    alert_labels,
    alertmanager_payload,
    check_alert,
    format_number,
    group_key,
    slack_payload,
    slack_text,
    webhook_payload,
)

NOW = datetime(2024, 5, 1, 12, 10, 0, tzinfo=UTC)


def record(state: str = "firing", **over: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "rule": "HighErrorRate",
        "bot_id": "bot-7",
        "severity": "page",
        "state": state,
        "value": 0.4231,
        "threshold": 0.1,
        "window": "5m",
        "starts_at": "2024-05-01T12:00:00Z",
        "ends_at": "2024-05-01T12:20:00.5+00:00" if state == "resolved" else None,
        "fingerprint": "f00dfeed",
        "labels": {"team": "payments", "env": "prod"},
        "annotations": {
            "summary": "bot-7 fails 42% of jobs",
            "runbook_url": "https://runbooks.example/high-error-rate",
        },
    }
    alert.update(over)
    return alert


# -- Alertmanager v2 ----------------------------------------------------------------------------


def test_alertmanager_firing_alert_is_valid_for_three_resend_intervals() -> None:
    (posted,) = alertmanager_payload([record()], now=NOW, resend_interval_s=60)
    assert posted == {
        "labels": {
            "alertname": "HighErrorRate",
            "bot_id": "bot-7",
            "env": "prod",
            "severity": "page",
            "team": "payments",
        },
        "annotations": {
            "runbook_url": "https://runbooks.example/high-error-rate",
            "summary": "bot-7 fails 42% of jobs",
            "threshold": "0.1",
            "value": "0.4231",
            "window": "5m",
        },
        "startsAt": "2024-05-01T12:00:00.000Z",
        "endsAt": "2024-05-01T12:13:00.000Z",
    }


def test_value_threshold_and_window_are_annotations_unless_the_rule_names_its_own() -> None:
    # A rule without annotations told the on-call person which bot and rule, not how far off.
    bare = record(annotations={}, value=32_716.5, threshold=20_000, window="15m")
    assert alert_annotations(bare) == {"threshold": "20000", "value": "32716", "window": "15m"}
    own = record(annotations={"value": "{value:.0%} of jobs"}, value=0.5)
    assert alert_annotations(own)["value"] == "{value:.0%} of jobs"  # the rule's, as filled
    assert "window" not in alert_annotations(record(window=None))


def test_slack_shows_numbers_without_an_exponent() -> None:
    text = str(slack_payload(record(value=1_234_567.0, threshold=20_000)))
    assert "1234567" in text and "e+06" not in text


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.4231234, "0.4231"),
        (32_716.5, "32716"),
        (222.25, "222.2"),
        (0.00001234, "0.00001234"),
        (7, "7"),
        (float("inf"), "inf"),
        ("5m", "5m"),
        (True, "True"),
    ],
)
def test_numbers_are_shown_without_an_exponent(number: Any, text: str) -> None:
    assert format_number(number) == text


def test_alertmanager_resolved_alert_carries_its_end_and_the_generator_url() -> None:
    (posted,) = alertmanager_payload(
        [record("resolved")], now=NOW, resend_interval_s=60, generator_url="https://bw.example"
    )
    assert posted["endsAt"] == "2024-05-01T12:20:00.500Z"
    assert posted["generatorURL"] == "https://bw.example"


def test_alertmanager_payload_is_a_list_in_order() -> None:
    alerts = [record(bot_id="a", fingerprint="1"), record("resolved", bot_id="b", fingerprint="2")]
    posted = alertmanager_payload(alerts, now=NOW, resend_interval_s=30)
    assert [p["labels"]["bot_id"] for p in posted] == ["a", "b"]


def test_identifying_labels_win_over_rule_labels_and_empty_ones_go() -> None:
    labels = alert_labels(
        record(labels={"severity": "info", "alertname": "x", "owner": "", "shard": 3})
    )
    assert labels == {
        "alertname": "HighErrorRate",
        "bot_id": "bot-7",
        "severity": "page",
        "shard": "3",
    }


# -- webhook v4 ---------------------------------------------------------------------------------

WEBHOOK_KEYS = {
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
}


def test_webhook_firing_has_alertmanagers_v4_shape() -> None:
    body = webhook_payload([record()], receiver="pager", external_url="https://bw.example")
    assert set(body) == WEBHOOK_KEYS
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "pager"
    assert body["externalURL"] == "https://bw.example"
    assert body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"alertname": "HighErrorRate", "bot_id": "bot-7"}
    assert body["groupKey"] == '{}:{alertname="HighErrorRate", bot_id="bot-7"}'
    assert body["commonLabels"] == alert_labels(record())
    assert body["commonAnnotations"]["summary"] == "bot-7 fails 42% of jobs"
    (alert,) = body["alerts"]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert alert["status"] == "firing"
    assert alert["startsAt"] == "2024-05-01T12:00:00.000Z"
    assert alert["endsAt"] == ZERO_TIME
    assert alert["fingerprint"] == "f00dfeed"


def test_webhook_resolved() -> None:
    body = webhook_payload([record("resolved")])
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2024-05-01T12:20:00.500Z"


def test_webhook_group_is_firing_while_any_alert_fires_and_common_is_the_intersection() -> None:
    body = webhook_payload(
        [
            record("resolved", labels={"team": "payments", "env": "prod"}),
            record(fingerprint="x", labels={"team": "payments", "env": "dev"}),
        ]
    )
    assert body["status"] == "firing"
    assert "env" not in body["commonLabels"]
    assert body["commonLabels"]["team"] == "payments"


def test_each_error_type_of_a_bot_is_a_group_of_its_own() -> None:
    labels = {"error_type": "PermissionError"}
    body = webhook_payload([record("resolved", labels=labels)])
    assert body["groupKey"] == (
        '{}:{alertname="HighErrorRate", bot_id="bot-7", error_type="PermissionError"}'
    )
    other = webhook_payload([record(labels={"error_type": "TimeoutError"})])
    assert other["groupKey"] != body["groupKey"]


def test_group_key_quotes_values() -> None:
    assert group_key({"b": 'say "hi"', "a": "1"}) == '{}:{a="1", b="say \\"hi\\""}'


def test_webhook_needs_an_alert() -> None:
    with pytest.raises(ValueError, match="at least one alert"):
        webhook_payload([])


# -- Slack --------------------------------------------------------------------------------------


def test_slack_firing_line_names_rule_bot_and_value_vs_threshold() -> None:
    text = slack_text(record())
    assert text == (
        ":red_circle: [FIRING] HighErrorRate on bot bot-7 (page): "
        "value 0.4231 vs threshold 0.1 over 5m"
    )


def test_slack_message_has_summary_fields_and_runbook_link() -> None:
    message = slack_payload(record())
    assert message["text"] == slack_text(record())
    (attachment,) = message["attachments"]
    assert attachment["color"] == "#d93f0b"
    texts = [
        b.get("text", {}).get("text", "") for b in attachment["blocks"] if b["type"] == "section"
    ]
    assert "bot-7 fails 42% of jobs" in texts
    assert ":book: <https://runbooks.example/high-error-rate|Runbook>" in texts
    fields = [f["text"] for b in attachment["blocks"] for f in b.get("fields", [])]
    assert fields == [
        "*Bot*\nbot-7",
        "*Severity*\npage",
        "*Value*\n0.4231",
        "*Threshold*\n0.1",
        "*Window*\n5m",
    ]


def test_slack_resolved_is_green_and_says_when() -> None:
    message = slack_payload(record("resolved"))
    assert message["text"].startswith(":large_green_circle: [RESOLVED] HighErrorRate on bot bot-7")
    (attachment,) = message["attachments"]
    assert attachment["color"] == "#2eb886"
    context = attachment["blocks"][-1]["elements"][0]["text"]
    assert "resolved 2024-05-01T12:20:00.500Z" in context


def test_slack_escapes_control_characters_and_shows_missing_values() -> None:
    message = slack_payload(record(bot_id="<!channel>&co", value=None, annotations={}, window=None))
    assert "&lt;!channel&gt;&amp;co" in message["text"]
    assert "<!channel>" not in str(message)
    assert "value n/a" in message["text"]
    assert not any("Runbook" in str(b) for b in message["attachments"][0]["blocks"])


# -- records the receivers refuse ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rule": ""}, "no 'rule'"),
        ({"fingerprint": None}, "no 'fingerprint'"),
        ({"state": "pending"}, "neither 'firing' nor 'resolved'"),
        ({"state": "resolved", "ends_at": None}, "resolved alert record has no 'ends_at'"),
        ({"starts_at": "yesterday"}, "starts_at 'yesterday' is not RFC 3339"),
        ({"labels": ["a"]}, "'labels' is not a mapping"),
    ],
)
def test_unusable_records_are_refused_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(AlertRecordError, match=message):
        check_alert(record(**change))
