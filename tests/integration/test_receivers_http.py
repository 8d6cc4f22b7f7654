"""Alert receivers against a local HTTP server that records what it is sent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from support import free_port, recorder

from sinks.receivers import Notifier, ReceiverConfig, SlackReceiver, WebhookReceiver


def record(state: str, bot: str = "bot-http") -> dict[str, Any]:
    return {
        "rule": "HighErrorRate",
        "bot_id": bot,
        "severity": "page",
        "state": state,
        "value": 0.5,
        "threshold": 0.1,
        "window": "5m",
        "starts_at": "2024-05-01T12:00:00Z",
        "ends_at": datetime.now(UTC).isoformat() if state == "resolved" else None,
        "fingerprint": f"fp-{bot}",
        "labels": {"team": "ops"},
        "annotations": {"summary": "too many errors", "runbook_url": "https://rb.example/x"},
    }


def fast_retries(**over: Any) -> ReceiverConfig:
    values: dict[str, Any] = {
        "retries": 4,
        "retry_base_s": 0.05,
        "retry_cap_s": 0.2,
        "timeout_s": 10.0,
        "stop_grace_s": 30.0,
    }
    values.update(over)
    return ReceiverConfig(**values)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_webhook_and_slack_get_one_firing_then_one_resolved() -> None:
    async with recorder() as rec:
        hook_path, slack_path = f"/ok/hook-{uuid.uuid4().hex}", f"/ok/slack-{uuid.uuid4().hex}"
        notifier = Notifier(
            [
                WebhookReceiver(rec.url + hook_path, fast_retries()),
                SlackReceiver(rec.url + slack_path, fast_retries()),
            ]
        )
        async with notifier:
            notifier.submit(record("firing"))
            notifier.submit(record("resolved"))
            hooks = await rec.wait_for(hook_path, 2)
            slacks = await rec.wait_for(slack_path, 2)
        assert len(hooks) == 2 and len(slacks) == 2
        assert set(rec.content_types) == {"application/json"}

        assert [h["status"] for h in hooks] == ["firing", "resolved"]
        for hook in hooks:
            assert hook["version"] == "4"
            assert hook["receiver"] == "webhook"
            assert hook["groupKey"] == '{}:{alertname="HighErrorRate", bot_id="bot-http"}'
            (alert,) = hook["alerts"]
            assert alert["labels"] == {
                "alertname": "HighErrorRate",
                "bot_id": "bot-http",
                "severity": "page",
                "team": "ops",
            }
            assert alert["fingerprint"] == "fp-bot-http"
            assert alert["status"] == hook["status"]
        assert hooks[0]["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
        assert hooks[1]["alerts"][0]["endsAt"] > hooks[1]["alerts"][0]["startsAt"]

        assert "[FIRING] HighErrorRate on bot bot-http" in slacks[0]["text"]
        assert "[RESOLVED] HighErrorRate on bot bot-http" in slacks[1]["text"]
        assert "value 0.5 vs threshold 0.1" in slacks[0]["text"]
        assert "<https://rb.example/x|Runbook>" in str(slacks[0]["attachments"])


async def test_a_receiver_answering_500_twice_gets_the_alert_after_retries() -> None:
    registry = CollectorRegistry()
    async with recorder() as rec:
        path = f"/flaky/{uuid.uuid4().hex}"
        receiver = WebhookReceiver(rec.url + path, fast_retries(), registry=registry)
        await receiver.start()
        receiver.submit(record("firing"))
        await receiver.stop()  # waits for the queue to be delivered
        assert rec.answers[path] == [500, 500, 200]
        bodies = rec.bodies[path]
        assert bodies[0] == bodies[1] == bodies[2]
        assert bodies[2]["status"] == "firing"
        assert (
            value(
                registry, "botwatch_receiver_failures_total", receiver="webhook", reason="http_5xx"
            )
            == 2
        )
        assert value(registry, "botwatch_receiver_delivered_total", receiver="webhook") == 1
        assert receiver.ok


async def test_a_receiver_down_for_a_while_gets_the_resolution_once_it_is_back() -> None:
    """With the old five retries (about 15 s) a resolution sent while the receiver was down
    for longer was dropped, and its incident stayed open for good."""
    registry = CollectorRegistry()
    port = free_port()
    path = f"/ok/{uuid.uuid4().hex}"
    config = fast_retries(retries=-1, retry_cap_s=0.3)
    receiver = WebhookReceiver(f"http://127.0.0.1:{port}{path}", config, registry=registry)
    await receiver.start()
    try:
        receiver.submit(record("resolved"))
        await asyncio.sleep(3)  # refused: nothing listens yet
        refused = value(
            registry, "botwatch_receiver_failures_total", receiver="webhook", reason="connection"
        )
        assert refused > 5
        async with recorder(port) as rec:
            [body] = await rec.wait_for(path, 1)
        assert body["status"] == "resolved"
    finally:
        await receiver.stop()
    assert value(registry, "botwatch_receiver_delivered_total", receiver="webhook") == 1


async def test_a_hanging_receiver_does_not_hold_up_the_others() -> None:
    registry = CollectorRegistry()
    async with recorder() as rec:
        hang_path, ok_path = f"/hang/{uuid.uuid4().hex}", f"/ok/{uuid.uuid4().hex}"
        stuck = WebhookReceiver(
            rec.url + hang_path,
            fast_retries(timeout_s=300, queue_size=5),
            name="stuck",
            registry=registry,
        )
        fine = WebhookReceiver(rec.url + ok_path, fast_retries(), name="fine", registry=registry)
        notifier = Notifier([stuck, fine])
        await notifier.start()
        for n in range(10):
            notifier.submit(record("firing", bot=f"bot-{n}"))
        delivered = await rec.wait_for(ok_path, 10)
        assert [d["alerts"][0]["labels"]["bot_id"] for d in delivered] == [
            f"bot-{n}" for n in range(10)
        ]
        # all ten were queued before either worker ran: the stuck receiver's queue of five
        # dropped the five oldest, and it still waits on its first request (bot-5)
        assert [b["alerts"][0]["labels"]["bot_id"] for b in rec.bodies[hang_path]] == ["bot-5"]
        assert rec.answers[hang_path] == []
        assert stuck.queued == 4
        assert (
            value(
                registry, "botwatch_receiver_dropped_total", receiver="stuck", reason="queue_full"
            )
            == 5
        )
        await fine.stop()  # lets its last request finish
        await stuck.stop(grace_s=0)
        assert (
            value(registry, "botwatch_receiver_dropped_total", receiver="stuck", reason="stopped")
            == 5
        )
        assert value(registry, "botwatch_receiver_delivered_total", receiver="fine") == 10


async def test_a_request_without_answer_times_out_and_is_counted() -> None:
    registry = CollectorRegistry()
    async with recorder() as rec:
        path = f"/hang/{uuid.uuid4().hex}"
        receiver = WebhookReceiver(
            rec.url + path, fast_retries(timeout_s=0.2, retries=1), registry=registry
        )
        await receiver.start()
        receiver.submit(record("firing"))
        await receiver.stop()
        assert len(rec.bodies[path]) == 2
        assert (
            value(
                registry, "botwatch_receiver_failures_total", receiver="webhook", reason="timeout"
            )
            == 2
        )
        assert (
            value(
                registry,
                "botwatch_receiver_dropped_total",
                receiver="webhook",
                reason="retries_exhausted",
            )
            == 1
        )
        assert not receiver.ok
