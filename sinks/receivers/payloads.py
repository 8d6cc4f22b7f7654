"""Pure builders of what each alert receiver is sent, from botwatch's alert record.

The alert record (``botwatch.alerts`` topic): ``rule``, ``bot_id``, ``severity``, ``state``
(``firing`` | ``resolved``), ``value``, ``threshold``, ``window``, ``starts_at``, ``ends_at``
(RFC 3339, ``None`` while firing), ``fingerprint``, ``labels`` and ``annotations`` (str -> str).

- Prometheus Alertmanager, API v2 (``POST /api/v2/alerts``): a JSON list of
  ``{labels, annotations, startsAt, endsAt, generatorURL}``. Alertmanager identifies an alert by
  its labels, so they carry ``alertname`` (the rule), ``bot_id`` and ``severity`` over the rule's
  own labels. A firing alert is re-sent periodically with ``endsAt = now + 3 * resend interval``
  (Prometheus' own scheme): should botwatch stop re-sending, Alertmanager resolves the alert by
  itself after three missed re-sends. A resolved alert carries its real ``endsAt``.
- Generic webhook: Alertmanager's webhook payload, version "4", so receivers written for
  Alertmanager read botwatch's notifications unchanged. One notification per alert record; a
  firing alert's ``endsAt`` is Go's zero time, as Alertmanager sends it.
- Slack incoming webhook: ``text`` (the notification line and fallback) and one attachment
  coloured by state whose blocks give the summary, value vs threshold, window and runbook link.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

WEBHOOK_VERSION: Final = "4"
ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""``endsAt`` of a firing alert in Alertmanager's webhook payload (Go's zero ``time.Time``)."""
RESEND_VALIDITY_FACTOR: Final = 3
"""A re-sent firing alert is valid for this many resend intervals."""
REQUIRED: Final = ("rule", "bot_id", "severity", "state", "starts_at", "fingerprint")
STATES: Final = ("firing", "resolved")
SLACK_COLORS: Final = {"firing": "#d93f0b", "resolved": "#2eb886"}
SLACK_ICONS: Final = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}


class AlertRecordError(ValueError):
    """An alert record lacks a field the receivers need, or has one they cannot use."""


def check_alert(alert: Mapping[str, Any]) -> None:
    """Raise ``AlertRecordError`` naming the first unusable field of ``alert``."""
    for key in REQUIRED:
        if alert.get(key) in (None, ""):
            raise AlertRecordError(f"alert record has no {key!r}: {_brief(alert)}")
    if alert["state"] not in STATES:
        raise AlertRecordError(
            f"alert record state {alert['state']!r} is neither 'firing' nor 'resolved': "
            f"{_brief(alert)}"
        )
    if alert["state"] == "resolved" and not alert.get("ends_at"):
        raise AlertRecordError(f"resolved alert record has no 'ends_at': {_brief(alert)}")
    for key in ("starts_at", "ends_at"):
        if alert.get(key):
            parse_time(alert[key], key)
    for key in ("labels", "annotations"):
        if not isinstance(alert.get(key) or {}, Mapping):
            raise AlertRecordError(f"alert record {key!r} is not a mapping: {_brief(alert)}")


def parse_time(value: str, field: str = "timestamp") -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (a naive one is taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise AlertRecordError(f"alert record {field} {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2024-05-01T12:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """The rule's labels under ``alertname``, ``bot_id`` and ``severity`` (those three win);
    values as strings, empty ones left out (Alertmanager drops them too)."""
    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    labels.update(
        alertname=str(alert["rule"]), bot_id=str(alert["bot_id"]), severity=str(alert["severity"])
    )
    return {k: v for k, v in sorted(labels.items()) if v != ""}


MEASURES: Final = ("value", "threshold", "window")
"""Record fields every Alertmanager and webhook notification carries as annotations."""


def alert_annotations(alert: Mapping[str, Any]) -> dict[str, str]:
    """The rule's annotations, and ``value``, ``threshold`` and ``window`` of the record where
    the rule has no annotation of that name: a rule without annotations (or a summary that
    leaves them out) told the on-call person which bot and rule, not how far off it was."""
    annotations = {str(k): str(v) for k, v in (alert.get("annotations") or {}).items()}
    for key in MEASURES:
        measure = alert.get(key)
        if key not in annotations and measure not in (None, ""):
            annotations[key] = format_number(measure)
    return {k: v for k, v in sorted(annotations.items()) if v != ""}


def format_number(value: Any) -> str:
    """A number as people read it: no exponent (``3.27e+04`` ms is read as 32700 only at a
    second look), whole from 10,000 up, four significant digits below (at most 8 decimals);
    anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    if abs(value) >= 10_000:
        return f"{value:.0f}"
    text = f"{value:.4g}"
    if "e" in text:  # below 0.0001
        text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text


# -- Prometheus Alertmanager, API v2 ------------------------------------------------------------


def alertmanager_alert(
    alert: Mapping[str, Any],
    *,
    now: datetime,
    resend_interval_s: float,
    generator_url: str = "",
) -> dict[str, Any]:
    """One postable alert of ``POST /api/v2/alerts``, as sent at ``now``."""
    check_alert(alert)
    if alert["state"] == "resolved":
        ends = parse_time(alert["ends_at"], "ends_at")
    else:
        ends = now + timedelta(seconds=resend_interval_s * RESEND_VALIDITY_FACTOR)
    posted: dict[str, Any] = {
        "labels": alert_labels(alert),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(parse_time(alert["starts_at"], "starts_at")),
        "endsAt": rfc3339(ends),
    }
    if generator_url:
        posted["generatorURL"] = generator_url
    return posted


def alertmanager_payload(
    alerts: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    resend_interval_s: float,
    generator_url: str = "",
) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts`` for ``alerts``."""
    return [
        alertmanager_alert(
            a, now=now, resend_interval_s=resend_interval_s, generator_url=generator_url
        )
        for a in alerts
    ]


# -- generic webhook (Alertmanager's webhook payload, version 4) --------------------------------


def group_key(group_labels: Mapping[str, str]) -> str:
    """Alertmanager's group key: route matchers (none here), then the group's labels."""
    inner = ", ".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(group_labels.items()))
    return "{}:{" + inner + "}"


def webhook_payload(
    alerts: Sequence[Mapping[str, Any]],
    *,
    receiver: str = "botwatch",
    external_url: str = "",
    generator_url: str = "",
    group_by: Sequence[str] = ("alertname", "bot_id", "error_type"),
    truncated_alerts: int = 0,
) -> dict[str, Any]:
    """One webhook notification about ``alerts`` (one group: they should share ``group_by``).

    Each alert is posted on its own, so a group is one alert: a ``new_error_type`` alert's
    error type is part of its group (else resolving one error type of a bot would say
    "resolved" under the group key the bot's other error types still fire under, and a
    pager that deduplicates on it would close their incident).

    ``status`` is ``firing`` while any alert of the group fires, else ``resolved``;
    ``commonLabels``/``commonAnnotations`` are the pairs every alert has.
    """
    if not alerts:
        raise ValueError("a webhook notification needs at least one alert")
    for a in alerts:
        check_alert(a)
    labels = [alert_labels(a) for a in alerts]
    annotations = [alert_annotations(a) for a in alerts]
    group_labels = {k: labels[0][k] for k in group_by if k in labels[0]}
    items = [
        {
            "status": a["state"],
            "labels": lab,
            "annotations": ann,
            "startsAt": rfc3339(parse_time(a["starts_at"], "starts_at")),
            "endsAt": (
                rfc3339(parse_time(a["ends_at"], "ends_at"))
                if a["state"] == "resolved"
                else ZERO_TIME
            ),
            "generatorURL": generator_url,
            "fingerprint": str(a["fingerprint"]),
        }
        for a, lab, ann in zip(alerts, labels, annotations, strict=True)
    ]
    firing = any(a["state"] == "firing" for a in alerts)
    return {
        "version": WEBHOOK_VERSION,
        "groupKey": group_key(group_labels),
        "truncatedAlerts": truncated_alerts,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common(labels),
        "commonAnnotations": _common(annotations),
        "externalURL": external_url,
        "alerts": items,
    }


# -- Slack incoming webhook ---------------------------------------------------------------------


def slack_text(alert: Mapping[str, Any]) -> str:
    """The one-line notification: state, rule, bot, severity, value vs threshold."""
    check_alert(alert)
    state = alert["state"]
    return (
        f"{SLACK_ICONS[state]} [{state.upper()}] {_slack_escape(alert['rule'])} "
        f"on bot {_slack_escape(alert['bot_id'])} ({_slack_escape(alert['severity'])}): "
        f"{_value_vs_threshold(alert)}"
    )


def slack_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message about one alert record."""
    text = slack_text(alert)
    state = alert["state"]
    annotations = alert_annotations(alert)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
    ]
    summary = annotations.get("summary") or annotations.get("description")
    if summary:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(summary)}}
        )
    fields = [
        f"*Bot*\n{_slack_escape(alert['bot_id'])}",
        f"*Severity*\n{_slack_escape(alert['severity'])}",
        f"*Value*\n{_number(alert.get('value'))}",
        f"*Threshold*\n{_number(alert.get('threshold'))}",
    ]
    if alert.get("window") not in (None, ""):
        fields.append(f"*Window*\n{_slack_escape(str(alert['window']))}")
    blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]})
    runbook = annotations.get("runbook_url")
    if runbook:
        link = f"<{_slack_escape(runbook)}|Runbook>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f":book: {link}"}})
    times = f"Started {rfc3339(parse_time(alert['starts_at'], 'starts_at'))}"
    if state == "resolved":
        times += f", resolved {rfc3339(parse_time(alert['ends_at'], 'ends_at'))}"
    times += f" · fingerprint {_slack_escape(str(alert['fingerprint']))}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": times}]})
    return {"text": text, "attachments": [{"color": SLACK_COLORS[state], "blocks": blocks}]}


# -- helpers ------------------------------------------------------------------------------------


def _common(dicts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _slack_escape(value: Any) -> str:
    """Slack's mrkdwn control characters, escaped as its docs ask."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _slack_escape(value)
    return format_number(value)


def _value_vs_threshold(alert: Mapping[str, Any]) -> str:
    text = f"value {_number(alert.get('value'))} vs threshold {_number(alert.get('threshold'))}"
    if alert.get("window") not in (None, ""):
        text += f" over {_slack_escape(str(alert['window']))}"
    return text


def _brief(alert: Mapping[str, Any]) -> str:
    return f"rule={alert.get('rule')!r} bot_id={alert.get('bot_id')!r}"
