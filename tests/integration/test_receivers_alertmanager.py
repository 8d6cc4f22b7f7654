"""The Alertmanager receiver against a real Prometheus Alertmanager on loopback.

The fixture starts the Debian package's binary with a temporary configuration routing every
alert to a receiver that notifies nobody, no clustering, and storage in the test's tmp dir.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from support import Alertmanager, eventually

from sinks.receivers import AlertmanagerReceiver, ReceiverConfig


def record(rule: str, state: str, ends_at: str | None = None) -> dict[str, Any]:
    return {
        "rule": rule,
        "bot_id": "bot-am",
        "severity": "page",
        "state": state,
        "value": 0.5,
        "threshold": 0.1,
        "window": "5m",
        "starts_at": "2024-05-01T12:00:00Z",
        "ends_at": ends_at,
        "fingerprint": f"{rule}|bot-am",
        "labels": {"team": "ops"},
        "annotations": {"summary": "too many errors", "runbook_url": "https://rb.example/x"},
    }


async def test_alert_fires_then_resolves_in_alertmanager(alertmanager: Alertmanager) -> None:
    rule = f"BotwatchTest{uuid.uuid4().hex[:10]}"
    resolved_before = alertmanager.received("resolved")
    config = ReceiverConfig(
        resend_interval_s=60, retries=3, retry_base_s=0.1, external_url="http://botwatch.test"
    )
    receiver = AlertmanagerReceiver(alertmanager.url, config)
    await receiver.start()
    try:
        receiver.submit(record(rule, "firing"))
        (alert,) = await eventually(lambda: alertmanager.alerts(rule), "the firing alert")
        assert alert["labels"] == {
            "alertname": rule,
            "bot_id": "bot-am",
            "severity": "page",
            "team": "ops",
        }
        assert alert["annotations"] == {
            "summary": "too many errors",
            "runbook_url": "https://rb.example/x",
            "value": "0.5",
            "threshold": "0.1",
            "window": "5m",
        }
        assert alert["status"]["state"] == "active"
        assert alert["startsAt"].startswith("2024-05-01T12:00:00")
        assert alert["generatorURL"] == "http://botwatch.test"
        ends = datetime.fromisoformat(alert["endsAt"])
        assert ends > datetime.now(UTC)  # valid until re-sent, not resolved

        receiver.submit(record(rule, "resolved", ends_at=datetime.now(UTC).isoformat()))
        await eventually(lambda: not alertmanager.alerts(rule), "the alert to leave the list")
    finally:
        await receiver.stop()
    # resolved alerts are listed under no filter (the API skips an alert whose endsAt passed)
    assert alertmanager.alerts(rule, active=True, silenced=True, inhibited=True) == []
    assert alertmanager.alerts(rule, active=False, unprocessed=True) == []
    # ... and it left because Alertmanager received it resolved, not because it expired
    assert alertmanager.received("resolved") >= resolved_before + 1
    assert receiver.ok


async def test_firing_alert_is_resent_and_its_validity_extended(
    alertmanager: Alertmanager,
) -> None:
    rule = f"BotwatchResend{uuid.uuid4().hex[:10]}"
    receiver = AlertmanagerReceiver(alertmanager.url, ReceiverConfig(resend_interval_s=0.5))
    await receiver.start()
    try:
        receiver.submit(record(rule, "firing"))
        (first,) = await eventually(lambda: alertmanager.alerts(rule), "the firing alert")

        def extended() -> bool:
            found = alertmanager.alerts(rule)
            return bool(found) and found[0]["endsAt"] > first["endsAt"]

        await eventually(extended, "a re-send extending endsAt")
        (later,) = alertmanager.alerts(rule)
        assert later["updatedAt"] > first["updatedAt"]
        assert later["startsAt"] == first["startsAt"]
        receiver.submit(record(rule, "resolved", ends_at=datetime.now(UTC).isoformat()))
        await eventually(lambda: not alertmanager.alerts(rule), "the alert to resolve")
    finally:
        await receiver.stop()
