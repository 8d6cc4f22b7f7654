"""Receivers' queues, retries and logging, over a scripted transport and a recording sleep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from sinks.receivers import (
    AlertmanagerReceiver,
    AlertRecordError,
    Notifier,
    ReceiverConfig,
    Reply,
    SlackReceiver,
    WebhookReceiver,
)
from sinks.receivers.base import shown_url

NOW = datetime(2024, 5, 1, 12, 10, 0, tzinfo=UTC)


def record(state: str = "firing", bot: str = "bot-1", **over: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "rule": "HighErrorRate",
        "bot_id": bot,
        "severity": "page",
        "state": state,
        "value": 0.5,
        "threshold": 0.1,
        "window": "5m",
        "starts_at": "2024-05-01T12:00:00Z",
        "ends_at": "2024-05-01T12:20:00Z" if state == "resolved" else None,
        "fingerprint": f"fp-{bot}",
        "labels": {},
        "annotations": {"summary": "s"},
    }
    alert.update(over)
    return alert


class ScriptedTransport:
    """Answers each post with the next scripted reply (or raises it); 200 once it runs out."""

    def __init__(self, *script: Reply | BaseException) -> None:
        self.script = list(script)
        self.posts: list[tuple[str, Any, float]] = []
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> Reply:
        assert headers["Content-Type"] == "application/json"
        self.posts.append((url, orjson.loads(body), timeout_s))
        step = self.script.pop(0) if self.script else Reply(200, b"ok")
        if isinstance(step, BaseException):
            raise step
        return step


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def config(**over: Any) -> ReceiverConfig:
    base: dict[str, Any] = {"retries": 3, "retry_base_s": 1.0, "retry_cap_s": 5.0}
    base.update(over)
    return ReceiverConfig(**base)


# -- queue --------------------------------------------------------------------------------------


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    registry = CollectorRegistry()
    transport = ScriptedTransport()
    receiver = WebhookReceiver(
        "http://hook.example/alerts",
        config(queue_size=3),
        registry=registry,
        transport=transport,
    )
    for n in range(5):
        receiver.submit(record(bot=f"bot-{n}"))
    assert receiver.queued == 3
    assert value(registry, "botwatch_receiver_queued", receiver="webhook") == 3
    assert (
        value(registry, "botwatch_receiver_dropped_total", receiver="webhook", reason="queue_full")
        == 2
    )
    await receiver.start()
    await receiver.stop(grace_s=30)
    bots = [body["alerts"][0]["labels"]["bot_id"] for _, body, _ in transport.posts]
    assert bots == ["bot-2", "bot-3", "bot-4"]
    assert value(registry, "botwatch_receiver_delivered_total", receiver="webhook") == 3
    assert transport.started and transport.closed


def test_submit_refuses_an_unusable_record_at_once() -> None:
    receiver = WebhookReceiver("http://hook.example", transport=ScriptedTransport())
    with pytest.raises(AlertRecordError, match="state"):
        receiver.submit(record(state="pending"))
    assert receiver.queued == 0


async def test_stop_counts_what_could_not_be_delivered() -> None:
    registry = CollectorRegistry()
    gate = asyncio.Event()

    class Hanging(ScriptedTransport):
        async def post(
            self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
        ) -> Reply:
            await gate.wait()
            return Reply(200, b"")

    receiver = SlackReceiver(
        "https://hooks.slack.example/services/T/B/secret",
        config(),
        registry=registry,
        transport=Hanging(),
    )
    await receiver.start()
    receiver.submit(record(bot="a"))
    receiver.submit(record(bot="b"))
    await asyncio.sleep(0)  # the worker takes "a" and hangs on it
    await receiver.stop(grace_s=0)
    assert (
        value(registry, "botwatch_receiver_dropped_total", receiver="slack", reason="stopped") == 2
    )
    assert receiver.queued == 0


async def stop_while_failing(
    receiver: Any, feed: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Start ``receiver``, ``feed`` it, let it fail a few times, stop it: the lines of the
    stop's warning about what it left undelivered."""
    await receiver.start()
    feed()
    for _ in range(5):
        await asyncio.sleep(0)  # retried, and failing
    with caplog.at_level(logging.WARNING, logger="sinks.receivers.base"):
        await receiver.stop(grace_s=0)
    return [r.getMessage() for r in caplog.records if "stopped with" in r.getMessage()]


async def test_stop_says_what_it_leaves_undelivered_the_one_being_retried_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before, a resolution retried against a receiver that was down went without a word
    # when the worker stopped: only what still waited in the queue was logged.
    receiver = WebhookReceiver(
        "http://hook.example/alerts",
        config(retries=-1),
        transport=ScriptedTransport(*[Reply(500, b"down")] * 50),
        sleep=lambda _: asyncio.sleep(0),
    )
    [line] = await stop_while_failing(
        receiver, lambda: receiver.submit(record(state="resolved", bot="legacy-etl")), caplog
    )
    assert "1 notification(s) undelivered, the first resolved HighErrorRate of legacy-etl" in line
    assert "not sent again after a restart (last error: HTTP 500: down)" in line


# -- retries ------------------------------------------------------------------------------------


async def test_failures_are_retried_with_capped_exponential_backoff_and_full_jitter() -> None:
    registry = CollectorRegistry()
    sleep = RecordingSleep()
    transport = ScriptedTransport(
        Reply(503, b"busy"), TimeoutError(), ConnectionResetError("reset"), Reply(200, b"ok")
    )
    receiver = WebhookReceiver(
        "http://hook.example",
        config(retries=5, timeout_s=2.5),
        registry=registry,
        transport=transport,
        sleep=sleep,
        rand=lambda: 0.5,
    )
    assert await receiver.deliver([record()])
    # full jitter: rand() * min(cap, base * 2**attempt), cap 5
    assert sleep.delays == [0.5, 1.0, 2.0]
    assert len(transport.posts) == 4
    assert {timeout for _, _, timeout in transport.posts} == {2.5}
    failures = {
        reason: value(
            registry, "botwatch_receiver_failures_total", receiver="webhook", reason=reason
        )
        for reason in ("http_5xx", "timeout", "connection")
    }
    assert failures == {"http_5xx": 1, "timeout": 1, "connection": 1}
    assert value(registry, "botwatch_receiver_retries_total", receiver="webhook") == 3
    assert value(registry, "botwatch_receiver_delivered_total", receiver="webhook") == 1


async def test_the_backoff_ceiling_is_capped() -> None:
    sleep = RecordingSleep()
    receiver = WebhookReceiver(
        "http://hook.example",
        config(retries=6),
        transport=ScriptedTransport(*[Reply(500, b"")] * 7),
        sleep=sleep,
        rand=lambda: 0.999,
    )
    assert not await receiver.deliver([record()])
    assert sleep.delays == pytest.approx([0.999, 1.998, 3.996, 4.995, 4.995, 4.995])


async def test_after_the_last_retry_the_notification_is_dropped_and_counted() -> None:
    registry = CollectorRegistry()
    transport = ScriptedTransport(*[Reply(502, b"")] * 4)
    receiver = WebhookReceiver(
        "http://hook.example",
        config(retries=3),
        registry=registry,
        transport=transport,
        sleep=RecordingSleep(),
    )
    assert not await receiver.deliver([record()])
    assert len(transport.posts) == 4
    assert (
        value(
            registry,
            "botwatch_receiver_dropped_total",
            receiver="webhook",
            reason="retries_exhausted",
        )
        == 1
    )


async def test_by_default_a_notification_is_retried_until_the_receiver_takes_it() -> None:
    """A resolution lost to a receiver down for a minute left its incident open for good."""
    registry = CollectorRegistry()
    sleep = RecordingSleep()
    transport = ScriptedTransport(*[ConnectionRefusedError("refused")] * 40, Reply(200, b"ok"))
    receiver = WebhookReceiver(
        "http://hook.example",
        ReceiverConfig(retry_base_s=1.0, retry_cap_s=30.0),
        registry=registry,
        transport=transport,
        sleep=sleep,
        rand=lambda: 0.5,
    )
    assert await receiver.deliver([record("resolved")])
    assert len(transport.posts) == 41
    assert max(sleep.delays) == 15.0  # half the cap, with this jitter
    assert value(registry, "botwatch_receiver_delivered_total", receiver="webhook") == 1
    dropped = value(
        registry, "botwatch_receiver_dropped_total", receiver="webhook", reason="retries_exhausted"
    )
    assert dropped == 0


async def test_a_failing_notification_gives_way_to_a_newer_one_of_its_alert() -> None:
    """Retried until delivered, a firing record that one receiver keeps failing on held up
    everything behind it, the alert's own resolution too."""
    registry = CollectorRegistry()
    transport = ScriptedTransport(*[Reply(500, b"")] * 3)

    async def pause(seconds: float) -> None:
        await asyncio.sleep(0)  # the backoff: others run meanwhile

    receiver = WebhookReceiver(
        "http://hook.example", ReceiverConfig(), registry=registry, transport=transport,
        sleep=pause,
    )  # fmt: skip
    firing = record()
    delivering = asyncio.ensure_future(receiver.deliver([firing]))
    while len(transport.posts) < 2:
        await asyncio.sleep(0)
    receiver.submit(record("resolved"))  # queued behind it
    assert await delivering is False
    dropped = value(
        registry, "botwatch_receiver_dropped_total", receiver="webhook", reason="superseded"
    )
    assert dropped == 1
    assert [a["state"] for a in receiver.next_batch()] == ["resolved"]


async def test_a_4xx_is_not_retried() -> None:
    registry = CollectorRegistry()
    sleep = RecordingSleep()
    transport = ScriptedTransport(Reply(400, b"invalid_payload"))
    receiver = SlackReceiver(
        "https://hooks.slack.example/services/T/B/secret",
        config(),
        registry=registry,
        transport=transport,
        sleep=sleep,
    )
    assert not await receiver.deliver([record()])
    assert len(transport.posts) == 1
    assert sleep.delays == []
    assert (
        value(registry, "botwatch_receiver_dropped_total", receiver="slack", reason="rejected") == 1
    )
    assert not receiver.ok
    assert "invalid_payload" in receiver.health()[1]


async def test_429_waits_at_least_retry_after_capped() -> None:
    sleep = RecordingSleep()
    receiver = SlackReceiver(
        "https://hooks.slack.example/services/T/B/secret",
        config(retry_cap_s=5.0),
        transport=ScriptedTransport(Reply(429, b"", 3.0), Reply(429, b"", 60.0)),
        sleep=sleep,
        rand=lambda: 0.0,
    )
    assert await receiver.deliver([record()])
    assert sleep.delays == [3.0, 5.0]


# -- logging once per state change --------------------------------------------------------------


async def test_failing_and_recovering_are_each_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    transport = ScriptedTransport(*[Reply(500, b"down")] * 7)
    receiver = WebhookReceiver(
        "http://user:pw@hook.example/in?token=abc",
        config(retries=2),
        registry=registry,
        transport=transport,
        sleep=RecordingSleep(),
    )
    with caplog.at_level(logging.INFO, logger="sinks.receivers.base"):
        assert not await receiver.deliver([record(bot="a")])  # 3 failures
        assert not await receiver.deliver([record(bot="b")])  # 3 more
        assert not receiver.ok
        assert value(registry, "botwatch_receiver_up", receiver="webhook") == 0
        assert await receiver.deliver([record(bot="c")])  # 1 failure, then delivered
        assert await receiver.deliver([record(bot="d")])
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        (
            "WARNING",
            "alert receiver webhook at http://hook.example/in is failing: HTTP 500: down; "
            "retrying with backoff, further failures are counted in botwatch_receiver_failures "
            "until it delivers again",
        ),
        (
            "WARNING",
            "alert receiver webhook at http://hook.example/in delivers again, "
            "after 7 failed attempt(s)",
        ),
    ]
    assert receiver.ok
    assert value(registry, "botwatch_receiver_up", receiver="webhook") == 1
    assert (
        value(registry, "botwatch_receiver_failures_total", receiver="webhook", reason="http_5xx")
        == 7
    )


async def test_a_receiver_that_refuses_is_said_to_drop_not_to_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 4xx is dropped at once; the log said "retrying with backoff".
    transport = ScriptedTransport(Reply(400, b"bad payload"), Reply(400, b"bad"), Reply(500, b"x"))
    receiver = WebhookReceiver(
        "http://hook.example/api/v1/alerts",
        config(retries=1),
        transport=transport,
        sleep=RecordingSleep(),
    )
    with caplog.at_level(logging.INFO, logger="sinks.receivers.base"):
        assert not await receiver.deliver([record(bot="a")])
        assert not await receiver.deliver([record(bot="b")])  # refused again: no new line
        assert await receiver.deliver([record(bot="c")])  # a 500, retried, delivered
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "alert receiver webhook at http://hook.example/api/… refuses notifications: "
        "HTTP 400: bad payload; each one it refuses is dropped, not retried "
        '(botwatch_receiver_dropped_total{reason="rejected"}): check that the URL is the '
        "receiver's (its path too) and that it takes this kind of payload",
        "alert receiver webhook at http://hook.example/api/… is failing: HTTP 500: x; "
        "retrying with backoff, further failures are counted in botwatch_receiver_failures "
        "until it delivers again",
        "alert receiver webhook at http://hook.example/api/… delivers again, "
        "after 3 failed attempt(s)",
    ]


async def test_a_transport_error_naming_the_url_is_said_without_its_secret_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiohttp's text of a redirect loop or a proxy's refusal holds the whole URL."""
    url = "https://discord.com/api/webhooks/123/T0KEN"
    failure = aiohttp.ClientError(f"too many redirects, url={url!r}")
    receiver = WebhookReceiver(
        url, config(retries=1), transport=ScriptedTransport(failure), sleep=RecordingSleep()
    )
    with caplog.at_level(logging.INFO, logger="sinks.receivers.base"):
        assert await receiver.deliver([record(bot="a")])  # retried, delivered
    said = " ".join(r.getMessage() for r in caplog.records) + str(receiver.health())
    assert "T0KEN" not in said and "url='https://discord.com/api/…'" in said


def test_a_slack_url_is_shown_without_its_secret_path() -> None:
    receiver = SlackReceiver("https://hooks.slack.com/services/T0/B0/XyZ", transport=None)
    assert receiver.display_url == "https://hooks.slack.com/…"
    assert "XyZ" not in receiver.health()[1]
    assert shown_url("http://u:p@h:8080/x?q=1") == "http://h:8080/x"
    # A generic webhook's path after its first segment may be a secret too (Discord,
    # Teams, Mattermost); Alertmanager's is its own API's.
    discord = WebhookReceiver("https://discord.com/api/webhooks/123/T0KEN", transport=None)
    assert discord.display_url == "https://discord.com/api/…"
    assert WebhookReceiver("http://h/hook", transport=None).display_url == "http://h/hook"
    am = AlertmanagerReceiver("http://u:p@am:9093/", transport=None)
    assert am.display_url == "http://am:9093/api/v2/alerts"


# -- Alertmanager -------------------------------------------------------------------------------


async def test_alertmanager_posts_the_latest_record_per_fingerprint_to_api_v2() -> None:
    transport = ScriptedTransport()
    receiver = AlertmanagerReceiver(
        "http://am.example:9093/",
        config(resend_interval_s=20),
        transport=transport,
        now=lambda: NOW,
    )
    receiver.submit(record(bot="a"))
    receiver.submit(record(bot="b"))
    receiver.submit(record("resolved", bot="a"))
    await receiver.start()
    await receiver.stop(grace_s=30)
    ((url, body, _),) = transport.posts
    assert url == "http://am.example:9093/api/v2/alerts"
    assert [(a["labels"]["bot_id"], a["endsAt"]) for a in body] == [
        ("b", "2024-05-01T12:11:00.000Z"),
        ("a", "2024-05-01T12:20:00.000Z"),
    ]


async def test_alertmanager_resends_firing_alerts_until_resolved() -> None:
    transport = ScriptedTransport()
    receiver = AlertmanagerReceiver(
        "http://am.example:9093/api/v2/alerts", config(), transport=transport, now=lambda: NOW
    )
    receiver.submit(record(bot="a"))
    receiver.submit(record(bot="b"))
    assert [a["bot_id"] for a in receiver.active] == ["a", "b"]
    batch = receiver.next_batch()
    assert [a["bot_id"] for a in batch] == ["a", "b"]
    receiver.resend_now()
    receiver.submit(record("resolved", bot="a"))
    # the planned re-send no longer holds "a"; its resolve follows
    assert [(a["bot_id"], a["state"]) for a in receiver.next_batch()] == [("b", "firing")]
    assert [(a["bot_id"], a["state"]) for a in receiver.next_batch()] == [("a", "resolved")]
    assert receiver.next_batch() == []
    receiver.resend_now()
    assert [a["bot_id"] for a in receiver.next_batch()] == ["b"]
    receiver.submit(record("resolved", bot="b"))
    receiver.next_batch()
    receiver.resend_now()
    assert receiver.next_batch() == []
    assert receiver.active == []


async def test_alertmanager_re_sends_the_value_an_alert_has_now() -> None:
    # Re-sends carried the firing notification's record: Alertmanager showed 47% errors
    # while the bot was at 58%.
    receiver = AlertmanagerReceiver(
        "http://am.example:9093", config(), transport=ScriptedTransport(), now=lambda: NOW
    )
    receiver.submit(record(bot="a", value=0.47))
    receiver.next_batch()
    receiver.resend_now()  # planned with the old record...
    receiver.refresh([record(bot="a", value=0.58), record(bot="z", value=0.9)])
    [resent] = receiver.next_batch()  # ...sent with the new one, not skipped
    assert (resent["bot_id"], resent["value"]) == ("a", 0.58)
    assert [a["bot_id"] for a in receiver.active] == ["a"]  # "z": not one it re-sends
    receiver.submit(record("resolved", bot="a"))
    receiver.refresh([record(bot="a", value=0.6)])  # too late: resolved
    assert receiver.active == []


async def test_a_re_send_cut_short_by_a_stop_is_not_said_to_be_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The next owner of the alerts' partitions re-sends them: "not sent again" was untrue.
    receiver = AlertmanagerReceiver(
        "http://am.example:9093",
        config(retries=-1),
        transport=ScriptedTransport(*[Reply(503, b"down")] * 50),
        sleep=lambda _: asyncio.sleep(0),
        now=lambda: NOW,
    )
    restored = [record(bot="a"), record(bot="b")]
    assert await stop_while_failing(receiver, lambda: receiver.restore(restored), caplog) == []


async def test_alertmanager_takes_up_restored_alerts_and_lets_go_of_withdrawn_ones() -> None:
    receiver = AlertmanagerReceiver(
        "http://am.example:9093", config(), transport=ScriptedTransport(), now=lambda: NOW
    )
    receiver.restore([record(bot="a"), record(bot="b"), record("resolved", bot="c")])
    assert [a["bot_id"] for a in receiver.active] == ["a", "b"]
    assert [a["bot_id"] for a in receiver.next_batch()] == ["a", "b"]  # re-sent at once
    assert receiver.queued == 0  # not a new notification
    receiver.withdraw([str(record(bot="a")["fingerprint"])])
    receiver.resend_now()
    assert [a["bot_id"] for a in receiver.next_batch()] == ["b"]
    webhook = WebhookReceiver("http://hook.example", config(), transport=ScriptedTransport())
    webhook.restore([record(bot="a")])
    assert webhook.queued == 0  # heard of it once: nothing to do


async def test_alertmanager_resend_task_runs_every_interval() -> None:
    transport = ScriptedTransport()
    receiver = AlertmanagerReceiver(
        "http://am.example:9093", config(resend_interval_s=0.01), transport=transport
    )
    await receiver.start()
    receiver.submit(record(bot="a"))
    async with asyncio.timeout(30):
        while len(transport.posts) < 3:
            await asyncio.sleep(0.01)
    await receiver.stop(grace_s=0)
    assert all([a["labels"]["bot_id"] for a in b] == ["a"] for _, b, _ in transport.posts[:3])


# -- Notifier -----------------------------------------------------------------------------------


def test_notifier_builds_the_configured_receivers_sharing_one_registry() -> None:
    registry = CollectorRegistry()
    notifier = Notifier.from_config(
        ReceiverConfig(
            alertmanager_url="http://am:9093",
            slack_webhook_url="https://hooks.slack.com/services/x",
        ),
        registry=registry,
    )
    assert [type(r) for r in notifier.receivers] == [AlertmanagerReceiver, SlackReceiver]
    assert all(r.metrics is notifier.receivers[0].metrics for r in notifier.receivers)
    assert Notifier.from_config(ReceiverConfig()).receivers == []


async def test_notifier_fans_one_alert_out_to_every_receiver() -> None:
    transports = [ScriptedTransport(), ScriptedTransport()]
    notifier = Notifier(
        [
            WebhookReceiver("http://a.example", transport=transports[0]),
            SlackReceiver("http://b.example", transport=transports[1]),
        ]
    )
    async with notifier:
        notifier.submit(record())
    assert transports[0].posts[0][1]["alerts"][0]["status"] == "firing"
    assert transports[1].posts[0][1]["text"].startswith(":red_circle: [FIRING]")


def test_notifier_refuses_two_receivers_of_one_name() -> None:
    with pytest.raises(ValueError, match="names must differ"):
        Notifier([WebhookReceiver("http://a"), WebhookReceiver("http://b")])


@pytest.mark.parametrize(
    ("setting", "url", "problem"),
    [
        (
            "alertmanager_url",
            "127.0.0.1:9093",
            "BOTWATCH_ALERTMANAGER_URL: '127.0.0.1:9093' is not an http:// or https:// URL",
        ),
        (
            "alert_webhook_url",
            "htp://127.0.0.1:9201/hook",
            "BOTWATCH_ALERT_WEBHOOK_URL: htp://127.0.0.1:9201/… is not an http:// or https://",
        ),
        (
            "slack_webhook_url",
            "hooks.slack.com/services/T0/B0/secret",
            "BOTWATCH_SLACK_WEBHOOK_URL: 'hooks.slack.com/…' is not an http:// or https://",
        ),
        ("alertmanager_url", "http:///x", "BOTWATCH_ALERTMANAGER_URL: 'http:/…' names no host"),
        ("alertmanager_url", "http://am:port", "Port could not be cast to integer"),
        ("alertmanager_url", "admin:secret@am:9093/x", "'am:9093/…' is not an http://"),
        ("alert_webhook_url", "http://[::1/secret", "'http://…': Invalid IPv6 URL"),
    ],
)
def test_a_receiver_url_no_request_could_go_to_is_refused_naming_its_setting(
    setting: str, url: str, problem: str
) -> None:
    # Before, it was found when the first alert fired, and retried for ever as a failed
    # connection while /ready answered 200.
    config = ReceiverConfig(**{setting: url})
    with pytest.raises(ValueError) as info:
        Notifier.from_config(config, registry=CollectorRegistry())
    assert problem in str(info.value)
    assert "secret" not in str(info.value)


def test_the_worker_refuses_a_wrong_receiver_url_before_it_touches_kafka() -> None:
    from click.testing import CliRunner

    from botwatch.cli import main

    env = {
        "BOTWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # refused before any connection
        "BOTWATCH_ALERTMANAGER_URL": "127.0.0.1:9093",
    }
    result = CliRunner().invoke(main, ["worker", "--sink", "discard"], env=env)
    assert result.exit_code != 0
    assert "error: an alert receiver's URL is wrong, the worker did not start" in result.output
    assert "BOTWATCH_ALERTMANAGER_URL: '127.0.0.1:9093' is not an http" in result.output
    assert "fix:" in result.output
