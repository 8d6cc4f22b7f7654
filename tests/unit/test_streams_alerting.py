"""The worker's alert stage inside the batch processor: alert records go to the topic, the
sink and the receivers once; state lives in the table and survives a restart; each
partition is judged by its own clock."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pytest
from test_streams_processor import T0, Clock, DictTable, Feed, RecordingOutputs, W, event

from sinks.config import DEFAULT_REDACT_KEYS
from sinks.discard import DiscardSink
from sinks.redact import Redactor
from streams.alerting import AlertStage
from streams.alerts import Silences, parse_rules
from streams.config import StreamsConfig
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor

RULES = """\
rules:
  - name: errors
    kind: threshold
    severity: critical
    stat: error_rate
    op: ">"
    threshold: 0.5
    span: 1
    min_events: 4
    annotations: {summary: "{bot_id} errors {value:.0%}"}
  - name: down
    kind: absence
    severity: warning
    for: 3m
"""


class ScanTable(DictTable):
    def scan(self, partition: int, prefix: str) -> list[tuple[str, bytes]]:
        return [
            (k, v)
            for (p, k), v in sorted(self.data.items())
            if p == partition and k.startswith(prefix)
        ]


class Inbox:
    """A receiver: what it was sent, and which firing alerts it holds for re-sending."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.held: dict[str, dict[str, Any]] = {}

    def submit(self, alert: dict[str, Any]) -> None:
        self.got.append(alert)

    def restore(self, alerts: Sequence[dict[str, Any]]) -> None:
        self.held.update((a["fingerprint"], a) for a in alerts)

    def withdraw(self, fingerprints: Iterable[str]) -> None:
        for fingerprint in fingerprints:
            self.held.pop(fingerprint, None)

    def refresh(self, alerts: Sequence[dict[str, Any]]) -> None:
        self.held.update((a["fingerprint"], a) for a in alerts if a["fingerprint"] in self.held)

    def states(self) -> list[tuple[str, str, str]]:
        return [(a["rule"], a["bot_id"], a["state"]) for a in self.got]


def make(
    table: ScanTable | None = None,
    clock: Clock | None = None,
    silences: Silences | None = None,
    outputs: RecordingOutputs | None = None,
    retire_after_s: float = 7 * 86400.0,
) -> tuple[BatchProcessor, ScanTable, RecordingOutputs, DiscardSink, Inbox, Clock]:
    table = table if table is not None else ScanTable()
    clock = clock or Clock()
    outputs = outputs if outputs is not None else RecordingOutputs()
    sink, inbox = DiscardSink(), Inbox()
    stage = AlertStage(parse_rules(RULES), table, silences or Silences(), receivers=inbox)
    config = StreamsConfig(lateness_s=30.0, idle_close_s=120.0, retire_after_s=retire_after_s)
    processor = BatchProcessor(
        config, table, outputs, sink, WorkerMetrics(), alerts=stage, notify=inbox, now_ms=clock
    )
    return processor, table, outputs, sink, inbox, clock


def breach(feed: Feed, minute: int = 0) -> list[Any]:
    """Four errors and one info event in ``minute``: an error rate of 80%."""
    base = T0 + minute * W
    return [feed(event("b", base + 1_000 * i, "error" if i else "info")) for i in range(5)]


async def test_a_breaching_window_fires_once_to_topic_sink_and_receivers() -> None:
    processor, table, outputs, sink, inbox, clock = make()
    feed = Feed()
    await processor.process(breach(feed))
    assert inbox.got == []  # the window is still open
    await processor.process([feed(event("b", T0 + W + 30_000))])  # watermark passes its end
    assert inbox.states() == [("errors", "b", "firing")]
    assert outputs.alert_records == inbox.got
    assert sink.alerts == 1
    record = inbox.got[0]
    assert record["value"] == 0.8
    assert record["annotations"]["summary"] == "b errors 80%"
    assert (0, "a|0|b") in table.data
    clock.now = T0 + W + 31_000
    await processor.tick_alerts()
    assert len(inbox.got) == 1  # no repeat


async def test_a_restarted_worker_neither_renotifies_nor_forgets_to_resolve() -> None:
    processor, table, _, _, inbox, clock = make()
    feed = Feed()
    await processor.process(breach(feed))
    await processor.process([feed(event("b", T0 + W + 30_000))])
    assert inbox.states() == [("errors", "b", "firing")]

    restarted, _, _, _, inbox2, _ = make(table=table, clock=clock)
    restarted.adopt([0])
    clock.now = T0 + W + 35_000
    await restarted.tick_alerts(behind={0})
    assert inbox2.got == []
    # A healthy minute closes: the same alert resolves, from the restarted worker.
    healthy = [feed(event("b", T0 + W + 31_000 + i)) for i in range(5)]
    await restarted.process([*healthy, feed(event("b", T0 + 2 * W + 30_000))])
    assert inbox2.states() == [("errors", "b", "resolved")]


async def test_a_restarted_worker_hands_the_alerts_still_firing_to_its_receivers() -> None:
    """Alertmanager resolves an alert nobody re-sends: the receiver that re-sends firing
    alerts must hold those notified before the restart, and let go of a partition's
    alerts when another worker takes it."""
    processor, table, _, _, inbox, clock = make()
    feed = Feed()
    await processor.process(breach(feed))
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [fired] = inbox.got
    restarted, _, _, _, inbox2, _ = make(table=table, clock=clock)
    restarted.adopt([0])
    await restarted.tick_alerts(behind={0})
    assert list(inbox2.held) == [fired["fingerprint"]]
    assert inbox2.held[fired["fingerprint"]]["starts_at"] == fired["starts_at"]
    assert inbox2.got == []  # no new notification
    await restarted.release([0])
    assert inbox2.held == {}


async def test_absence_is_judged_by_wall_clock_only_when_the_partition_is_caught_up() -> None:
    processor, _, _, _, inbox, clock = make()
    feed = Feed()
    await processor.process([feed(event("b", T0))])
    clock.now = T0 + 4 * W
    await processor.tick_alerts(behind={0})  # a backlog: judged in its own event time
    assert inbox.got == []
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]
    await processor.process([feed(event("b", T0 + 4 * W))])
    assert inbox.states() == [("down", "b", "firing"), ("down", "b", "resolved")]


@pytest.mark.parametrize("skew_ms", [-5 * W, 50 * W])
async def test_absence_at_the_wall_clock_is_measured_from_when_records_were_sent(
    skew_ms: int,
) -> None:
    """Event times 5 minutes behind (a clock behind, a shipper sending late): a bot sending
    every 30 s flapped down and back at every tick and record. 50 minutes ahead: a bot gone
    after one record was down only 50 minutes later."""
    processor, _, _, _, inbox, clock = make()
    feed = Feed()
    for i in range(12):  # every 30 s for 6 minutes, each record sent at once
        clock.now = T0 + i * 30_000
        record = feed(event("b", clock.now + skew_ms))._replace(timestamp_ms=clock.now)
        await processor.process([record])
        await processor.tick_alerts()
    assert inbox.got == []
    clock.now += 3 * W + 1_000  # then nothing for more than the rule's 3 minutes
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]
    assert inbox.got[0]["value"] == 181.0


async def bot_b_down() -> tuple[BatchProcessor, Inbox, Clock, Feed]:
    """A processor whose bot ``b`` sent one event at T0 and is paged as down 4 minutes on."""
    processor, _, _, _, inbox, clock = make()
    feed = Feed()
    await processor.process([feed(event("b", T0))])
    clock.now = T0 + 4 * W
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]
    return processor, inbox, clock, feed


async def test_a_replayed_record_does_not_take_a_bot_that_is_down_for_back() -> None:
    processor, inbox, clock, feed = await bot_b_down()
    replayed = [("botwatch.dlq.replay_count", b"1"), ("botwatch.dlq.replay.stage", b"validate")]
    old = feed(event("b", T0 + 1_000))._replace(headers=replayed, timestamp_ms=clock.now)
    await processor.process([old])
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]  # neither resolved nor fired again


async def test_a_producer_clock_ahead_of_the_worker_does_not_delay_the_page() -> None:
    processor, _, _, _, inbox, clock = make()
    feed = Feed()
    await processor.process([feed(event("b", T0))._replace(timestamp_ms=T0 + 60 * W)])
    clock.now = T0 + 3 * W + 1_000
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]


async def test_a_silence_holds_notifications_back_but_not_the_alert() -> None:
    silences = Silences()
    silences.add("errors", "b*", until_ms=T0 + 60 * W, reason="deploy", created_by="ops", now_ms=T0)
    processor, _, outputs, _, inbox, _ = make(silences=silences)
    feed = Feed()
    await processor.process(breach(feed))
    await processor.process([feed(event("b", T0 + W + 30_000))])
    assert inbox.got == []
    assert outputs.alert_records == []
    [active] = processor.alerts.active() if processor.alerts else []
    assert (active["state"], active["silenced"]) == ("firing", True)


async def test_alert_state_is_one_table_entry_per_bot() -> None:
    processor, table, _, _, _, _ = make()
    feed = Feed(partition=3)
    await processor.process(
        [
            feed(event("x", T0)),
            feed(event("y", T0, "error", error={"type": "IOError", "message": "m"})),
        ]
    )
    keys = sorted(k for (p, k) in table.data if k.startswith("a|"))
    assert keys == ["a|3|x", "a|3|y"]
    state = orjson.loads(table.data[(3, "a|3|y")])
    assert state["bot_id"] == "y"
    assert state["last_seen"] == T0


def test_the_silences_topic_is_applied_record_by_record() -> None:
    from streams import silences as topic

    held = Silences()
    made = Silences().add("errors", "b", until_ms=T0 + W, reason="r", created_by="me", now_ms=T0)
    topic.apply(held, *topic.encode(made))
    assert [s.id for s in held] == [made.id]
    topic.apply(held, b"other", b"{not json")  # skipped with a warning, nothing else changes
    assert len(held) == 1
    topic.apply(held, made.id.encode(), None)  # a tombstone: unsilenced
    assert len(held) == 0


class FlakyOutputs(RecordingOutputs):
    """Fails the next ``fail`` sends of alert records or windows."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    async def alerts(self, records: list[dict[str, Any]]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker went away")
        await super().alerts(records)

    async def stats(self, windows: list[dict[str, Any]]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker went away")
        await super().stats(windows)


async def test_a_tick_that_fails_to_publish_fires_again_on_the_next_one() -> None:
    outputs = FlakyOutputs()
    processor, _, _, _, inbox, clock = make(outputs=outputs)
    feed = Feed()
    await processor.process([feed(event("b", T0))])
    clock.now = T0 + 4 * W
    outputs.fail = 1
    with pytest.raises(ConnectionError):
        await processor.tick_alerts()
    assert inbox.got == []
    # A batch in between must not save the alert as fired: nobody was told.
    await processor.process([feed(event("c", T0 + 4 * W))])
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]
    assert outputs.alert_records == inbox.got


async def test_an_idle_close_that_fails_to_publish_closes_the_windows_again() -> None:
    outputs = FlakyOutputs()
    processor, _, _, _, _, clock = make(outputs=outputs)
    feed = Feed()
    await processor.process([feed(event("b", T0)), feed(event("b", T0 + 1_000))])
    clock.now = T0 + 10 * W
    outputs.fail = 1
    with pytest.raises(ConnectionError):
        await processor.close_idle()
    assert outputs.windows == []
    assert await processor.close_idle() == 1
    [window] = outputs.windows
    assert window["count"] == 2


async def test_a_retired_bot_resolves_its_absence_alert_and_its_entries_go() -> None:
    processor, table, outputs, _, inbox, clock = make(retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event("b", T0))])
    clock.now = T0 + 2 * W  # records are read after they were sent
    await processor.process([feed(event("other", T0 + 2 * W))])
    clock.now = T0 + 4 * W
    await processor.tick_alerts()
    assert inbox.states() == [("down", "b", "firing")]
    assert (0, "a|0|b") in table.data and (0, "b|0|b") in table.data
    clock.now = T0 + W + 3_600_000  # an hour after b's window ended
    assert await processor.retire_quiet({0: feed.offset}) == 1  # other's window is open
    *_, resolved = inbox.got
    assert (resolved["rule"], resolved["bot_id"], resolved["state"]) == ("down", "b", "resolved")
    assert resolved["annotations"]["retired"] == (
        "no events for 1h: botwatch forgot this bot, and its next event starts it afresh"
    )
    assert outputs.alert_records[-1] == resolved
    assert (0, "a|0|b") not in table.data and (0, "b|0|b") not in table.data
    await processor.tick_alerts()  # other has been quiet for most of the hour too
    assert [a for a in inbox.got if a["bot_id"] == "b"][-1] == resolved  # b is forgotten
    assert [a["bot_id"] for a in processor.alerts.active()] == ["other"]  # type: ignore[union-attr]


async def test_a_bot_whose_clock_jumped_hours_ahead_is_not_paged_as_down() -> None:
    # Its events are not windowed (over an hour ahead), but it is sending.
    processor, inbox, clock, feed = await bot_b_down()
    ahead = feed(event("b", clock.now + 3 * 3_600_000))._replace(timestamp_ms=clock.now)
    await processor.process([ahead])
    assert inbox.states()[-1] == ("down", "b", "resolved")
    clock.now += 2 * W  # within the absence time of when it last sent
    await processor.tick_alerts()
    assert inbox.states()[-1] == ("down", "b", "resolved")  # not paged again
    clock.now += 10 * W  # now it is silent
    await processor.tick_alerts()
    assert inbox.states()[-1] == ("down", "b", "firing")


async def test_a_bot_whose_clock_runs_days_behind_is_retired_by_when_it_last_sent() -> None:
    processor, table, *_, clock = make(retire_after_s=3600.0)
    feed = Feed()
    clock.now = T0 + 8 * 86_400_000
    # Sent now, dated eight days ago: judged by event time alone, long quiet.
    sent_now = feed(event("skewed", T0))._replace(timestamp_ms=clock.now)
    await processor.process([sent_now])
    clock.now += 3 * W
    assert await processor.close_idle() == 1  # its window closes: nothing holds it now
    assert await processor.retire_quiet({0: feed.offset}) == 0
    assert (0, "b|0|skewed") in table.data
    clock.now = sent_now.timestamp_ms + 3_600_000  # an hour after it last sent
    assert await processor.retire_quiet({0: feed.offset}) == 1


async def test_a_bot_known_only_to_the_alert_table_after_a_restart_is_retired_too() -> None:
    processor, table, *_, clock = make(retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event("b", T0)), feed(event("other", T0 + 2 * W))])
    restarted, *_ = make(table=table, clock=clock, retire_after_s=3600.0)
    restarted.adopt([0])  # loads the alert entries; bot entries wait for their bot's records
    clock.now = T0 + W + 3_600_000
    assert await restarted.retire_quiet({0: feed.offset}) == 1
    assert sorted(k for _, k in table.data if k.startswith(("a|", "b|"))) == [
        "a|0|other",
        "b|0|other",
    ]


async def test_alerts_of_a_rule_removed_from_the_file_resolve_and_the_log_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Only the notification said so: nothing in the worker's log told why 45 alerts resolved.
    processor, table, _, _, _, clock = make()
    feed = Feed()
    await processor.process(breach(feed))
    await processor.process([feed(event("b", T0 + W + 30_000))])
    only_down = "rules:\n  - {name: down, kind: absence, severity: warning, for: 3m}\n"
    restarted = AlertStage(parse_rules(only_down), table, Silences())
    with caplog.at_level(logging.WARNING, logger="streams.alerting"):
        records = restarted.tick(0, clock(), clock())
        assert restarted.tick(0, clock() + 1_000, clock() + 1_000) == []
    assert [(r["rule"], r["state"]) for r in records] == [("errors", "resolved")]
    assert [r.getMessage() for r in caplog.records] == [
        "the rule errors is no longer in the rules file: 1 of its firing alert(s) of "
        "partition 0 resolve, and their receivers are told"
    ]


async def test_receivers_that_re_send_get_the_value_a_firing_alert_has_now() -> None:
    processor, _, _, _, inbox, _ = make()
    feed = Feed()
    await processor.process(breach(feed))
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [fired] = inbox.got
    inbox.held[fired["fingerprint"]] = fired  # as Alertmanager's receiver holds it
    # A worse minute (5 errors of 6), still firing: no new notification; a re-send says so.
    await processor.process([feed(event("b", T0 + W + 31_000 + i, "error")) for i in range(5)])
    await processor.process([feed(event("b", T0 + 2 * W + 30_000, "error"))])
    assert len(inbox.got) == 1
    assert processor.alerts is not None
    processor.alerts.refresh_receivers()
    assert (fired["value"], inbox.held[fired["fingerprint"]]["value"]) == (0.8, 5 / 6)


async def test_a_secret_in_an_error_type_reaches_no_alert_and_makes_no_new_type() -> None:
    rules = parse_rules(
        "rules:\n  - {name: new-type, kind: new_error_type, severity: info, days: 7,"
        " learning: 0s, annotations: {summary: '{bot_id} raised {error_type}'}}\n"
    )
    table, inbox = ScanTable(), Inbox()
    scrub = Redactor(DEFAULT_REDACT_KEYS).redact_text
    stage = AlertStage(rules, table, Silences(), receivers=inbox, scrub=scrub)
    config = StreamsConfig(lateness_s=30.0, idle_close_s=120.0)
    processor = BatchProcessor(
        config, table, RecordingOutputs(), DiscardSink(), WorkerMetrics(), alerts=stage,
        notify=inbox, now_ms=Clock(),
    )  # fmt: skip
    feed = Feed()
    errors = [
        event("b", T0 + 1_000 * i, "error", error={"type": f"AuthError token=SEKRET{i}"})
        for i in range(3)
    ]
    await processor.process([feed(e) for e in errors])
    assert [a["labels"]["error_type"] for a in inbox.got] == ["AuthError token=[REDACTED]"]
    assert inbox.got[0]["annotations"]["summary"] == "b raised AuthError token=[REDACTED]"
    assert b"SEKRET" not in orjson.dumps([inbox.got, stage.active()])
    assert b"SEKRET" not in b"".join(v for v in table.data.values() if v is not None)
