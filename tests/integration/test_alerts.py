"""Alerts end to end: the worker evaluates rules over real windows and notifies a real
Alertmanager and a local HTTP receiver (webhook and Slack payloads).

Each test runs `botwatch worker` over its own topics and index prefix with a small rules file,
a lateness of 5 s (windows close soon after the next minute's events) and the idle close
pushed out of the way, so that only the watermark closes windows. Events are written with
event times in the recent past, so one-minute windows close as fast as Kafka delivers.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from pipeline import PARTITIONS, make_pipeline
from pipeline import worker as pipeline_worker
from support import (
    BOTWATCH,
    Alertmanager,
    Recorder,
    WorkerProcess,
    read_topic,
    recorder,
)
from support import (
    eventually as eventually_within,
)

from botwatch.settings import Settings
from schemas import timestamp_ms
from streams.app import changelog_topic
from streams.windows import rfc3339

ERRORS_RULE = """\
rules:
  - name: errors
    kind: threshold
    severity: critical
    stat: error_rate
    op: ">"
    threshold: 0.5
    span: 1
    min_events: 20
    labels: {team: bots}
    annotations:
      summary: "{bot_id}: {value:.0%} errors over {window}"
      runbook_url: https://runbooks.example/errors
"""

MINUTE = 60_000


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Windows close within seconds, but the worker shares two cores with the stack."""
    return await eventually_within(check, what, timeout=60)


@pytest.fixture
def pipeline(stack: Settings, make_topic: Any, tmp_path: Path, index_prefix: str) -> dict[str, Any]:
    run = make_pipeline(stack, make_topic, tmp_path)
    run["env"].update(
        {
            "BOTWATCH_INDEX_PREFIX": index_prefix,
            "BOTWATCH_ALLOWED_LATENESS_S": "5",
            "BOTWATCH_IDLE_CLOSE_S": "600",
            "BOTWATCH_ALERT_TICK_S": "0.5",
        }
    )
    return run


def use_rules(pipeline: dict[str, Any], text: str) -> None:
    path = pipeline["dir"] / "rules.yaml"
    path.write_text(text)
    pipeline["env"]["BOTWATCH_ALERT_RULES"] = str(path)


def use_receivers(pipeline: dict[str, Any], rec: Recorder, am: Alertmanager | None = None) -> str:
    """Webhook and Slack to ``rec`` (and Alertmanager to ``am``); returns the path prefix."""
    tag = uuid.uuid4().hex[:8]
    pipeline["env"]["BOTWATCH_ALERT_WEBHOOK_URL"] = f"{rec.url}/ok/hook-{tag}"
    pipeline["env"]["BOTWATCH_SLACK_WEBHOOK_URL"] = f"{rec.url}/ok/slack-{tag}"
    if am is not None:
        pipeline["env"]["BOTWATCH_ALERTMANAGER_URL"] = am.url
        pipeline["env"]["BOTWATCH_ALERTMANAGER_RESEND_INTERVAL_S"] = "2"
    return tag


def minute_aligned(ago_s: int) -> int:
    now = int(time.time() * 1000) - ago_s * 1000
    return now - now % MINUTE


def event(bot: str, ts_ms: int, level: str = "info", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": rfc3339(ts_ms),
        "bot_id": bot,
        "level": level,
        "message": "step",
        "schema_version": 1,
        **fields,
    }


async def produce(
    pipeline: dict[str, Any], events: list[dict[str, Any]], *, sent_as_stamped: bool = False
) -> None:
    """``events`` to the events topic; ``sent_as_stamped``: each record's Kafka timestamp is
    its event time (as a bot sending as things happen), else the time of sending."""
    producer = AIOKafkaProducer(
        bootstrap_servers=pipeline["settings"].kafka_bootstrap, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        topic = pipeline["topics"]["events"]
        sent = []
        for e in events:
            at = timestamp_ms(e["timestamp"]) if sent_as_stamped else None
            value, key = orjson.dumps(e), e["bot_id"].encode()
            sent.append(await producer.send(topic, value, key=key, timestamp_ms=at))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def generate(pipeline: dict[str, Any], start_ms: int, duration_s: int, *extra: str) -> None:
    """`botwatch generate` for three bots, 30 events/s of event time, sent unpaced."""
    done = subprocess.run(
        [*BOTWATCH, "generate", "--topic", pipeline["topics"]["events"], "--bots", "3",
         "--rate", "30", "--duration", str(duration_s), "--no-pacing", "--start",
         rfc3339(start_ms), "--error-rate", "0.02", "--seed", "5", *extra],
        env=pipeline["env"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def cli(pipeline: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BOTWATCH, *args], env=pipeline["env"], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


async def start_worker(pipeline: dict[str, Any], name: str = "a") -> WorkerProcess:
    w = pipeline_worker(pipeline, name).start()
    await asyncio.to_thread(w.wait_ready)
    return w


@asynccontextmanager
async def alerting(
    pipeline: dict[str, Any], rules: str
) -> AsyncIterator[tuple[Recorder, str, WorkerProcess]]:
    """A worker with ``rules`` notifying a local webhook and Slack recorder; stopped after."""
    use_rules(pipeline, rules)
    async with recorder() as rec:
        tag = use_receivers(pipeline, rec)
        w = await start_worker(pipeline)
        try:
            yield rec, tag, w
        finally:
            assert w.stop() == 0, w.tail()


def hook_alerts(rec: Recorder, tag: str) -> list[dict[str, Any]]:
    """Every alert the webhook received, in order, as (rule, bot, status) dicts."""
    out: list[dict[str, Any]] = []
    for body in rec.bodies[f"/ok/hook-{tag}"]:
        assert body["version"] == "4"
        out += body["alerts"]
    return out


def notified(rec: Recorder, tag: str, rule: str) -> list[tuple[str, str]]:
    return [
        (a["labels"]["bot_id"], a["status"])
        for a in hook_alerts(rec, tag)
        if a["labels"]["alertname"] == rule
    ]


async def test_an_incident_fires_once_and_resolves_once_everywhere(
    pipeline: dict[str, Any], alertmanager: Alertmanager, opensearch: Any
) -> None:
    """Webhook, Slack and a real Alertmanager: one firing and one resolved for bot-000's
    incident; nothing for a bot under min_events; nothing for a silenced bot."""
    rule = f"errors{uuid.uuid4().hex[:6]}"
    use_rules(pipeline, ERRORS_RULE.replace("name: errors", f"name: {rule}"))
    async with recorder() as rec:
        tag = use_receivers(pipeline, rec, alertmanager)
        silenced = cli(
            pipeline, "alerts", "silence", "--rule", rule, "--bot", "bot-001", "--for", "1h",
            "--reason", "bot-001 is being migrated", "--by", "test",
        )  # fmt: skip
        assert silenced.returncode == 0, silenced.stderr
        silence_id = silenced.stdout.split()[1].rstrip(":")
        listed = cli(pipeline, "alerts", "silences")
        assert silence_id in listed.stdout and "bot-001 is being migrated" in listed.stdout

        w = await start_worker(pipeline)
        try:
            start = minute_aligned(460)
            incidents = ["--incident", "bot-000:60:240:0.9", "--incident", "bot-001:60:240:0.9"]
            await asyncio.to_thread(generate, pipeline, start, 300, *incidents)
            # A quiet bot: every event an error, but fewer than min_events per window.
            quiet = [event("quiet-bot", start + MINUTE + i * 1000, "error") for i in range(5)]
            quiet.append(event("quiet-bot", start + 4 * MINUTE + 59_000))
            await produce(pipeline, quiet)

            firing = await eventually(
                lambda: notified(rec, tag, rule), "the webhook's firing notification"
            )
            assert firing == [("bot-000", "firing")]
            slack = await rec.wait_for(f"/ok/slack-{tag}", 1)
            assert "bot-000" in json.dumps(slack[0]) and "FIRING" in json.dumps(slack[0])

            def am_firing() -> list[dict[str, Any]]:
                return [a for a in alertmanager.alerts(rule) if a["status"]["state"] == "active"]

            [am_alert] = await eventually(am_firing, "the alert firing in Alertmanager")
            assert am_alert["labels"]["bot_id"] == "bot-000"
            assert am_alert["labels"]["team"] == "bots"
            assert am_alert["annotations"]["runbook_url"] == "https://runbooks.example/errors"

            listed_now = cli(pipeline, "alerts", "list", "--worker", f"http://127.0.0.1:{w.port}")
            assert listed_now.returncode == 0, listed_now.stderr
            rows = [line.split() for line in listed_now.stdout.splitlines()[1:]]
            assert ["firing", "critical", rule, "bot-000"] == rows[0][:4]
            assert any(r[:2] == ["firing", "(silenced)"] and "bot-001" in r for r in rows)

            # Healthy minutes close the incident.
            await asyncio.to_thread(
                generate,
                pipeline,
                start + 5 * MINUTE,
                int((time.time() * 1000 - start) / 1000) - 310,
            )
            await eventually(
                lambda: ("bot-000", "resolved") in notified(rec, tag, rule),
                "the webhook's resolved notification",
            )
            await eventually(lambda: not am_firing(), "the alert resolved in Alertmanager")
            await asyncio.sleep(2)  # anything extra would arrive now
            assert notified(rec, tag, rule) == [("bot-000", "firing"), ("bot-000", "resolved")]
            assert len(rec.bodies[f"/ok/slack-{tag}"]) == 2

            history = cli(pipeline, "alerts", "history", "--since", "1h", "--json")
            assert history.returncode == 0, history.stderr
            [doc] = [json.loads(line) for line in history.stdout.splitlines()]
            assert (doc["rule"], doc["bot_id"], doc["state"]) == (rule, "bot-000", "resolved")
            assert doc["ends_at"] is not None
            # Globs, as silences take them.
            args = ("alerts", "history", "--since", "1h", "--json", "--rule", rule)
            globbed = cli(pipeline, *args, "--bot", "bot-00*").stdout.splitlines()
            assert [json.loads(line)["bot_id"] for line in globbed] == ["bot-000"]
            assert cli(pipeline, *args, "--bot", "bot-9?9").stdout.strip() == ""
            records = [
                json.loads(e["payload"])
                for e in read_topic(
                    pipeline["settings"].kafka_bootstrap, pipeline["topics"]["alerts"]
                )
            ]
            mine = [(r["bot_id"], r["state"]) for r in records if r["rule"] == rule]
            assert mine == [("bot-000", "firing"), ("bot-000", "resolved")]
            ended = cli(pipeline, "alerts", "unsilence", silence_id)
            assert ended.returncode == 0, ended.stderr
            assert "no silence is in force" in cli(pipeline, "alerts", "silences").stdout
        finally:
            assert w.stop() == 0, w.tail()


async def test_a_worker_killed_while_an_alert_fires_neither_renotifies_nor_forgets_it(
    pipeline: dict[str, Any], alertmanager: Alertmanager
) -> None:
    """Nor does Alertmanager take it for resolved: it resolves an alert three re-send
    intervals (here 2 s) after it last heard of it, and the restarted worker re-sends it."""
    rule = f"errors{uuid.uuid4().hex[:6]}"
    use_rules(pipeline, ERRORS_RULE.replace("name: errors", f"name: {rule}"))

    def am_firing() -> list[str]:
        alerts = alertmanager.alerts(rule)
        return [a["labels"]["bot_id"] for a in alerts if a["status"]["state"] == "active"]

    async with recorder() as rec:
        tag = use_receivers(pipeline, rec, alertmanager)
        w = await start_worker(pipeline)
        start = minute_aligned(460)
        await asyncio.to_thread(generate, pipeline, start, 300, "--incident", "bot-000:60:240:0.9")
        firing = await eventually(lambda: notified(rec, tag, rule), "the firing notification")
        assert firing == [("bot-000", "firing")]
        await eventually(am_firing, "the alert firing in Alertmanager")
        w.kill()

        w = await start_worker(pipeline)
        try:
            await asyncio.sleep(9)  # many ticks of the restored state; 4.5 re-send intervals
            assert notified(rec, tag, rule) == [("bot-000", "firing")]
            assert am_firing() == ["bot-000"], w.tail()
            rest = int((time.time() * 1000 - start) / 1000) - 310
            await asyncio.to_thread(generate, pipeline, start + 5 * MINUTE, rest)
            await eventually(
                lambda: len(notified(rec, tag, rule)) >= 2, "the resolved notification"
            )
            await asyncio.sleep(2)
            assert notified(rec, tag, rule) == [("bot-000", "firing"), ("bot-000", "resolved")]
            await eventually(lambda: not am_firing(), "the alert resolved in Alertmanager")
        finally:
            assert w.stop() == 0, w.tail()


ABSENCE_RULE = """\
rules:
  - name: bot-down
    kind: absence
    severity: critical
    for: 8s
    annotations: {summary: "{bot_id} silent for {value:.0f} s"}
"""


async def test_a_bot_that_stops_is_down_after_the_configured_time_and_back_when_it_sends(
    pipeline: dict[str, Any],
) -> None:
    async with alerting(pipeline, ABSENCE_RULE) as (rec, tag, _):
        now = int(time.time() * 1000)
        beats = [event("hb-bot", now - 2000 + i * 500, status="heartbeat") for i in range(4)]
        await produce(pipeline, beats)
        stopped = time.monotonic()
        await eventually(lambda: notified(rec, tag, "bot-down"), "the bot-down notification")
        waited = time.monotonic() - stopped
        assert 6 <= waited <= 20, waited
        assert notified(rec, tag, "bot-down") == [("hb-bot", "firing")]
        await produce(pipeline, [event("hb-bot", int(time.time() * 1000), status="heartbeat")])
        await eventually(
            lambda: len(notified(rec, tag, "bot-down")) >= 2, "the resolved notification"
        )
        assert notified(rec, tag, "bot-down") == [("hb-bot", "firing"), ("hb-bot", "resolved")]


async def test_a_bot_quiet_past_the_retirement_time_is_forgotten_for_good(
    pipeline: dict[str, Any],
) -> None:
    """Its bot-down alert resolves saying why, its entries become tombstones in the
    changelog, and a restarted worker does not bring it back."""
    pipeline["env"]["BOTWATCH_RETIRE_AFTER_S"] = "20"  # checked every 2 s
    use_rules(pipeline, ABSENCE_RULE)
    async with recorder() as rec:
        tag = use_receivers(pipeline, rec)
        w = await start_worker(pipeline)
        try:
            now = int(time.time() * 1000)
            if now % MINUTE < 6_000:  # the keeper's event must pass the minute by the lateness
                await asyncio.sleep(6 - now % MINUTE / 1000)
                now = int(time.time() * 1000)
            minute = now - now % MINUTE
            gone = [event("gone-bot", minute - 30_000 + i * 500) for i in range(4)]
            # Its window [minute - 1 min, minute) closes on the keeper's event. Sent as they
            # happened: down (8 s) from then, before it is retired (20 s).
            await produce(pipeline, [*gone, event("keeper-bot", now)], sent_as_stamped=True)
            await eventually(
                lambda: len(notified(rec, tag, "bot-down")) >= 3, "bot-down for both, then gone"
            )
            mine = [a for a in hook_alerts(rec, tag) if a["labels"]["bot_id"] == "gone-bot"]
            assert [a["status"] for a in mine] == ["firing", "resolved"]
            assert mine[1]["annotations"]["retired"] == (
                "no events for 20s: botwatch forgot this bot, and its next event starts it afresh"
            )
            assert w.metric("botwatch_bots_retired_total") == 1
        finally:
            assert w.stop() == 0, w.tail()
        changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
        deleted = {
            r["key"] for r in read_topic(pipeline["settings"].kafka_bootstrap, changelog)
            if r["key"].endswith("|gone-bot") and r["payload"] is None
        }  # fmt: skip
        assert {key[0] for key in deleted} == {"a", "b"}  # its alert entry and its bot entry
        restarted = await start_worker(pipeline, "b")
        try:
            await asyncio.sleep(8)  # four checks: a bot restored from the table would go again
            assert restarted.metric("botwatch_bots_retired_total") == 0
            assert [a for a in hook_alerts(rec, tag) if a["labels"]["bot_id"] == "gone-bot"] == mine
        finally:
            assert restarted.stop() == 0, restarted.tail()


async def test_a_bot_quiet_since_before_a_restart_is_retired_by_the_next_worker(
    pipeline: dict[str, Any],
) -> None:
    """With no alert state to find it by, a bot that went quiet before the worker stopped
    was never judged again (only bots a record brought into the cache were): its entry
    stayed in the table and the changelog for good. Nor was one on a partition that gets
    no record after the restart: the new worker commits nothing there, and it retires only
    bots whose records it knows are committed (it now asks the group's commits)."""
    pipeline["env"]["BOTWATCH_RETIRE_AFTER_S"] = "20"  # checked every 2 s
    use_rules(pipeline, "rules: []\n")
    partition_of = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    home = partition_of(b"gone-bot", partitions, partitions)
    # A bot of the same partition, whose event closes gone-bot's window.
    neighbour = next(
        f"near-bot-{i}" for i in range(1000)
        if partition_of(f"near-bot-{i}".encode(), partitions, partitions) == home
    )  # fmt: skip
    w = await start_worker(pipeline)
    try:
        now = int(time.time() * 1000)
        minute = now - now % MINUTE
        gone = [event("gone-bot", minute - 2 * MINUTE + i * 500) for i in range(4)]
        # The neighbour's event closes gone-bot's window [minute - 2 min, minute - 1 min).
        await produce(pipeline, [*gone, event(neighbour, minute - MINUTE + 10_000)])
        await eventually(lambda: w.metric("botwatch_windows_closed_total") >= 1, "its window")
        assert w.metric("botwatch_bots_retired_total") == 0
    finally:
        assert w.stop() == 0, w.tail()
    restarted = await start_worker(pipeline, "b")  # its own state directory: the changelog's
    try:  # and no record on the partition from now on
        await eventually(
            lambda: restarted.metric("botwatch_bots_retired_total") >= 1, "gone-bot retired"
        )
        assert restarted.metric("botwatch_bots_retired_total") == 1
    finally:
        assert restarted.stop() == 0, restarted.tail()
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    deleted = [
        r["key"] for r in read_topic(pipeline["settings"].kafka_bootstrap, changelog)
        if r["payload"] is None
    ]  # fmt: skip
    assert deleted == [f"b|{home}|gone-bot"]


BURN_RULE = """\
rules:
  - name: slo-page
    kind: burn_rate
    severity: critical
    objective: 0.99
    windows:
      - {long: 1h, short: 5m, factor: 14.4}
    min_events: 20
"""


def jobs(
    bot: str, start: int, minutes: int, failure_ratio: float, seed: int
) -> list[dict[str, Any]]:
    """60 finished jobs a minute, each failing with ``failure_ratio`` (seeded)."""
    rng = random.Random(seed)
    out = []
    for i in range(minutes * 60):
        failed = rng.random() < failure_ratio
        status = "failure" if failed else "success"
        level = "error" if failed else "info"
        duration = float(rng.randint(50, 500))
        out.append(
            event(bot, start + i * 1000, level, status=status, job_id=f"j{i}", duration_ms=duration)
        )
    return out


async def test_a_burn_rate_above_14_4x_pages_and_one_at_3x_does_not(
    pipeline: dict[str, Any],
) -> None:
    async with alerting(pipeline, BURN_RULE) as (rec, tag, _):
        start = minute_aligned(480)
        hot = jobs("burn-hot", start, 7, 0.25, seed=1)  # 25x the 1% budget
        warm = jobs("burn-warm", start, 7, 0.03, seed=2)  # 3x
        closing = [event(b, start + 7 * MINUTE + 30_000) for b in ("burn-hot", "burn-warm")]
        await produce(pipeline, hot + warm + closing)
        await eventually(lambda: notified(rec, tag, "slo-page"), "the burn-rate page")

        def warm_windows() -> int:
            stats = read_topic(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["stats"])
            return sum(json.loads(s["payload"])["bot_id"] == "burn-warm" for s in stats)

        await eventually(lambda: warm_windows() >= 7, "burn-warm's seven windows to close")
        await asyncio.sleep(2)
        assert notified(rec, tag, "slo-page") == [("burn-hot", "firing")]
        [page] = [a for a in hook_alerts(rec, tag) if a["labels"]["alertname"] == "slo-page"]
        assert page["labels"]["severity"] == "critical"


def test_a_broken_rules_file_is_refused_at_start_naming_rule_field_and_line(
    pipeline: dict[str, Any],
) -> None:
    use_rules(
        pipeline,
        ERRORS_RULE + "  - name: slow\n    kind: threshold\n    severity: warning\n"
        "    stat: p95_duration_ms\n    op: '>>'\n    threshold: 100\n",
    )
    done = subprocess.run(
        [*BOTWATCH, "worker"], env=pipeline["env"], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1
    rules_path = pipeline["env"]["BOTWATCH_ALERT_RULES"]
    assert f"{rules_path}:18:" in done.stderr, done.stderr
    assert "slow" in done.stderr and "op" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_history_with_no_alerts_index_says_so_rather_than_no_alert(
    pipeline: dict[str, Any],
) -> None:
    """A mistyped BOTWATCH_INDEX_PREFIX answered "no alert in the last 24h", exit 0."""
    done = cli(pipeline, "alerts", "history")
    assert done.returncode == 0, done.stderr
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    assert done.stdout.startswith(f"no alert: no index matches {prefix}-alerts-* on OpenSearch")


async def test_a_secret_in_an_error_type_reaches_no_receiver_and_no_listing(
    pipeline: dict[str, Any],
) -> None:
    """Error types are redacted before alerts carry them: receivers are often third parties,
    and a type that differs only by its token is one type, not a page per token."""
    rules = (
        "rules:\n  - {name: new-type, kind: new_error_type, severity: info, days: 7,"
        " learning: 0s, annotations: {summary: '{bot_id} raised {error_type}'}}\n"
    )
    async with alerting(pipeline, rules) as (rec, tag, w):
        start = minute_aligned(120)
        await produce(
            pipeline,
            [
                event("leaky-bot", start + i * 1000, "error",
                      error={"type": f"AuthError token=SEKRET{i}", "message": "denied"})
                for i in range(3)
            ],
        )  # fmt: skip
        [alert] = await eventually(lambda: hook_alerts(rec, tag), "the new error type's alert")
        assert alert["labels"]["error_type"] == "AuthError token=[REDACTED]"
        await asyncio.sleep(2)  # a second "new" type would arrive now
        assert len(hook_alerts(rec, tag)) == 1
        assert "SEKRET" not in json.dumps(rec.bodies)
        listed = cli(pipeline, "alerts", "list", "--worker", f"http://127.0.0.1:{w.port}")
        assert listed.returncode == 0, listed.stderr
        assert "AuthError token=[REDACTED]" in listed.stdout and "SEKRET" not in listed.stdout
