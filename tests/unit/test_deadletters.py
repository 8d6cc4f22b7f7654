"""The pure parts of `botwatch dlq`: typed dead letters, filters, summary, replay planning."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas import timestamp_ms
from schemas.event import RULE_BOT_ID, RULE_MESSAGE_SIZE, RULE_TIMESTAMP
from streams import dlq
from streams.deadletters import jsonl
from streams.deadletters.plan import (
    REPLAY_ORIGIN,
    REPLAY_SOURCE,
    Action,
    Checkpoint,
    PlanError,
    TokenBucket,
    check_target,
    decide,
    parse_rate,
    replay_group,
    replay_headers,
    replay_key,
    resume_from,
    triage,
    window,
)
from streams.deadletters.records import Letter, decode, parse_position
from streams.deadletters.select import (
    Selection,
    SelectionError,
    Summary,
    make_selection,
    parse_time,
    reason_class,
)

NOW = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
MISKEYED = dlq.miskeyed_reason(None, "invoice-bot")
NOW_MS = timestamp_ms("2026-11-23T10:00:00.123Z")


def letter(
    stage: dlq.DlqStage = "validate",
    *,
    reason: str = "duration_ms: must be a finite number >= 0, got -3",
    key: bytes | None = b"invoice-bot",
    value: bytes | None = b'{"event_id": "e-1", "bot_id": "invoice-bot"}',
    offset: int = 7,
    replays: int = 0,
    own: list[tuple[str, bytes]] | None = None,
    now: datetime = NOW,
) -> Letter:
    original = list(own or [("trace", b"abc")])
    if replays:
        original.append((dlq.REPLAY_COUNT, str(replays).encode()))
    headers = dlq.dlq_headers(
        stage,
        reason,
        ValueError("bad") if stage != "job_failure" else None,
        original_topic="botwatch.events",
        partition=2,
        offset=40 + offset,
        timestamp_ms=1_700_000_000_000,
        original_headers=original,
        now=now,
    )
    return decode("botwatch.dlq", 1, offset, 1_700_000_000_500, key, value, headers)


# -- records ------------------------------------------------------------------------------


def test_a_dead_letter_decodes_into_typed_fields() -> None:
    x = letter("sink", replays=2)
    assert (x.stage, x.original_topic, x.original_partition, x.original_offset) == (
        "sink",
        "botwatch.events",
        2,
        47,
    )
    assert x.original_timestamp_ms == 1_700_000_000_000
    assert x.replay_count == 2
    assert x.exception == "ValueError: bad"
    assert x.first_failed_at == "2026-11-23T10:00:00.123Z"
    assert x.failed_at_ms == NOW_MS
    assert x.own_headers == [("trace", b"abc")]
    assert x.position == "1:7"
    assert x.source_id == "botwatch.dlq:1:7"
    assert x.bot == "invoice-bot"
    assert x.event_id == "e-1"
    assert x.problems == ()


def test_bot_falls_back_to_the_payload_and_odd_records_still_decode() -> None:
    assert letter(key=None).bot == "invoice-bot"
    assert letter(key=None, value=b"\xff\xfe").bot is None
    assert letter(value=None).event_id is None
    stray = decode("t", 0, 0, 5, None, b"x", [("other", b"1")])
    assert stray.stage == "?"
    assert stray.failed_at_ms == 5
    assert any("stage" in p for p in stray.problems)
    bad = decode("t", 0, 0, 5, None, b"x", [(dlq.STAGE, b"sink"), (dlq.REPLAY_COUNT, b"x")])
    assert bad.replay_count == 0
    assert any("replay_count" in p for p in bad.problems)


@pytest.mark.parametrize(
    ("text", "expected"), [("2:17", (2, 17)), ("0:0", (0, 0)), ("2", None), ("a:1", None),
                           ("1:-2", None), ("evt-1", None)]
)  # fmt: skip
def test_parse_position(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_position(text) == expected


# -- selection ----------------------------------------------------------------------------


def test_filters_combine() -> None:
    sel = make_selection(
        stages=["validate", "sink"],
        bots=["invoice-bot"],
        since="2026-11-23T09:00:00Z",
        until="2026-11-23T11:00:00Z",
        reason=r"duration_ms",
        now_ms=NOW_MS,
    )
    assert sel.matches(letter())
    assert not sel.matches(letter("decode"))
    assert not sel.matches(letter(key=b"other-bot"))
    assert not sel.matches(letter(reason="message: too long"))
    assert not sel.matches(letter(now=datetime(2026, 11, 23, 11, 0, tzinfo=UTC)))  # until excl.
    assert sel.matches(letter(now=datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))  # since incl.
    assert Selection().matches(letter("decode", key=None, value=b"\x00"))
    assert "stage sink|validate" in sel.describe()
    assert Selection().describe() == "every dead letter"


def test_times_are_rfc3339_durations_ago_or_now() -> None:
    assert parse_time("2h", "--since", NOW_MS) == NOW_MS - 7_200_000
    assert parse_time("now", "--until", NOW_MS) == NOW_MS
    assert parse_time("2026-11-23T10:00:00.123Z", "--since", 0) == NOW_MS
    with pytest.raises(SelectionError, match="--since 'yesterday'"):
        parse_time("yesterday", "--since", NOW_MS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": ["valid"]}, "(?s)unknown stage 'valid'.*decode, validate, sink, job_failure"),
        ({"since": "1h", "until": "2h"}, "--since .* is not before --until"),
        ({"since": "2026-11-23T10:00:00Z", "until": "2026-11-23T10:00:00Z"}, "not before"),
        ({"reason": "("}, "--reason '\\(' is not a regular expression"),
        ({"until": "soon"}, "--until 'soon' is neither"),
    ],
)
def test_bad_filters_say_what_to_write(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectionError, match=message) as info:
        make_selection(now_ms=NOW_MS, **kwargs)
    assert "fix:" in str(info.value)


def test_reason_classes_group_alike_failures() -> None:
    assert reason_class("duration_ms: must be a finite number >= 0, got -3") == (
        "duration_ms: must be a finite number >= 0"  # the contract's rule, as it is
    )
    assert reason_class(f"message: {RULE_MESSAGE_SIZE}, got 40000 bytes") == (
        f"message: {RULE_MESSAGE_SIZE}"
    )
    assert reason_class(f"bot_id: {RULE_BOT_ID}, got 'a b'") == f"bot_id: {RULE_BOT_ID}"
    assert reason_class(f"timestamp: {RULE_TIMESTAMP}, got '1'") == f"timestamp: {RULE_TIMESTAMP}"
    assert reason_class("record: must be UTF-8 encoded (invalid byte at offset 17), got b'x'") == (
        "record: must be UTF-8 encoded (invalid byte at offset N)"
    )
    for bot in ("a-bot", "b-bot"):  # one class for every bot's events keyed wrong
        assert reason_class(dlq.miskeyed_reason(b"other", bot)).startswith(
            "record key: must be the event's bot_id '…' ("
        )
    assert reason_class("level: must be one of 'debug', 'info', got 'loud'") == (
        "level: must be one of '…', '…'"
    )
    assert reason_class("") == "(no reason)"
    assert len(reason_class("x" * 500)) == 120


def test_summary_counts_by_stage_reason_and_bot() -> None:
    letters = [letter(), letter(reason="duration_ms: must be a finite number >= 0, got -9",
               offset=8), letter("decode", key=b"b2", reason="not JSON"), letter("sink",
               key=None, value=None)]  # fmt: skip
    summary = Summary().extend(letters)
    data = summary.to_dict()
    assert data["total"] == 4 and data["copies"] == 0
    assert data["stages"] == {"validate": 2, "decode": 1, "sink": 1}
    assert data["reasons"]["duration_ms: must be a finite number >= 0"] == 3
    assert data["bots"] == {"invoice-bot": 2, "b2": 1, "(no bot)": 1}
    text = "\n".join(summary.lines(top=1))
    assert "by stage:" in text and "2  validate" in text and "(2 more)" in text


def test_summary_counts_a_letter_written_twice_once() -> None:
    """A batch redone after a crash writes its letters again: replay sends one of them,
    and the summary must not count the failure twice either."""
    first = letter()
    again = decode("botwatch.dlq", 1, 99, 0, first.key, first.value, first.headers)
    replayed = letter(replays=1)  # the same record failing again after a replay: its own
    summary = Summary().extend([first, again, replayed])
    assert (summary.total, summary.copies) == (2, 1)
    assert summary.to_dict()["stages"] == {"validate": 2}
    assert summary.lines()[0] == (
        "2 dead letter(s) (and 1 copy of a letter written twice, not counted)"
    )


# -- replay planning ----------------------------------------------------------------------


def test_decide_targets_guards_and_quarantine() -> None:
    kw: dict[str, Any] = {"dlq_topic": "botwatch.dlq", "max_replays": 3}
    assert decide(letter(), to=None, **kw).target == "botwatch.events"
    assert decide(letter(), to=None, **kw).action is Action.SEND
    assert decide(letter(), to="fixed", **kw).target == "fixed"
    held = decide(letter(replays=3), to=None, **kw)
    assert (held.action, held.target) == (Action.QUARANTINE, "botwatch.events")
    assert decide(letter(replays=2), to=None, **kw).action is Action.SEND
    assert decide(letter(replays=0), to=None, dlq_topic="d", max_replays=0).action is (
        Action.QUARANTINE
    )
    job = decide(letter("job_failure"), to=None, **kw)
    assert job.action is Action.SKIP and "--to" in job.why
    assert decide(letter("job_failure"), to="bot-work", **kw).action is Action.SEND
    # A letter whose value was cut: sent, it fails again, and the new letter's original is
    # the cut copy. The problem says so in `dlq show`.
    cut_headers = [*letter().headers, (dlq.TRUNCATED, b"value cut from 9 to 5 bytes")]
    cut = decode("botwatch.dlq", 0, 1, 0, b"k", b"v", cut_headers)
    assert cut.problems == (
        "the letter was cut to fit the dead-letter topic (botwatch.dlq.truncated: value cut "
        "from 9 to 5 bytes)",
    )
    skipped = decide(cut, to="fixed", **kw)
    assert skipped.action is Action.SKIP and "the whole record is at its original" in skipped.why
    # --to its own topic is counted twice all the same.
    into_events = decide(letter("job_failure"), to="botwatch.events", **kw)
    assert into_events.action is Action.SKIP and into_events.why == job.why
    stray = decode("botwatch.dlq", 0, 0, 0, None, b"", [])
    assert decide(stray, to="x", **kw).action is Action.SKIP
    loop = decode("d", 0, 0, 0, None, b"", [(dlq.STAGE, b"sink"), (dlq.ORIGINAL_TOPIC, b"d")])
    assert decide(loop, to=None, dlq_topic="d", max_replays=3).action is Action.SKIP


def test_an_event_dead_lettered_for_its_key_is_replayed_keyed_by_its_bot() -> None:
    kw: dict[str, Any] = {"to": None, "dlq_topic": "botwatch.dlq", "max_replays": 3}
    x = letter(reason=MISKEYED, key=None)
    decision = decide(x, **kw)
    assert (decision.action, decision.target, decision.rekey) == (
        Action.SEND,
        "botwatch.events",
        True,
    )
    assert replay_key(x.key, x.value) == b"invoice-bot"
    assert (dlq.REPLAY_REKEYED, b"1") in replay_headers(x)
    assert all(name != dlq.REPLAY_REKEYED for name, _ in replay_headers(letter()))
    assert not decide(letter(), **kw).rekey
    assert not decide(letter("job_failure", reason=MISKEYED), **kw | {"to": "work"}).rekey
    # A value edited since, or not an event: the key it has.
    assert replay_key(b"k", b"not json") == b"k"
    assert replay_key(None, b"[1]") is None
    assert replay_key(b"k", b'{"bot_id": 7}') == b"k"
    assert replay_key(b"k", b'{"bot_id": ""}') == b"k"
    assert replay_key(b"k", None) == b"k"


def test_triage_from_raw_headers_decides_like_a_decoded_letter() -> None:
    """The replay's fast path gives ``decide`` and ``replay_headers`` of the decoded letter,
    or declines (None) where only a decoded letter can say why it is skipped."""
    base = letter(own=[("trace", b"abc"), ("empty", b"")]).headers
    cases: list[list[tuple[str, Any]]] = [
        list(base),
        list(letter(replays=2).headers),
        list(letter(replays=3).headers),
        list(letter("job_failure").headers),
        list(letter("sink", own=[]).headers),
        [*base, (dlq.REPLAY_COUNT, b"")],
        [*base, (dlq.STAGE, b"job_failure")],  # the last header of a name wins
        [*base, (dlq.ORIGINAL_TOPIC, b"botwatch.dlq")],  # loops back into the DLQ
        [*base, ("tombstone", None)],
        [(n, v) for n, v in base if n != dlq.FIRST_FAILED_AT],
        [(n, v) for n, v in base if n != dlq.ORIGINAL_PARTITION],  # no effect on a replay
        [(dlq.STAGE, b"\xff\xfe"), (dlq.ORIGINAL_TOPIC, b"t"), (dlq.FIRST_FAILED_AT, b"\xff")],
        [*base, (dlq.ORIGINAL_OFFSET, b"x")],  # no origin: not an integer
        [*base, (dlq.ORIGINAL_PARTITION, b" 3 ")],  # read as 3, as decode() reads it
        list(letter(reason=MISKEYED).headers),
        list(letter("sink", reason=MISKEYED).headers),  # only a validate letter is re-keyed
        [*base, (dlq.REASON, MISKEYED.encode())],  # the last header of a name wins
        [*base, (dlq.TRUNCATED, b"value cut from 9 to 5 bytes")],  # skipped
    ]
    for to in (None, "fixed", "botwatch.events"):  # the last: the letters' original topic
        for max_replays in (0, 3):
            kw: dict[str, Any] = {"to": to, "dlq_topic": "botwatch.dlq", "max_replays": max_replays}
            for headers in cases:
                x = decode("botwatch.dlq", 1, 7, 0, b"k", b"v", headers)
                found = triage(headers, x.source_id, **kw)
                assert found is not None, headers
                decision, sent = found
                assert decision == decide(x, **kw), headers
                assert sent == (replay_headers(x) if decision.action is Action.SEND else [])
    declined: list[list[tuple[str, bytes]] | None] = [
        [],
        [(n, v) for n, v in base if n != dlq.STAGE],
        [(n, v) for n, v in base if n != dlq.ORIGINAL_TOPIC],
        [*base, (dlq.ORIGINAL_TOPIC, b"")],
        [*base, (dlq.STAGE, b"?")],
        [*base, (dlq.REPLAY_COUNT, b"x")],  # not an integer: the loop guard cannot count it
        # Nor what int() would take: list, replay and the index agree on what a count is.
        *([*base, (dlq.REPLAY_COUNT, odd)] for odd in (b"-1", b" 7", b"1_0", "٣".encode())),
        None,
    ]
    for raw in declined:
        assert triage(raw, "d:0:0", to=None, dlq_topic="d", max_replays=3) is None
        x = decode("d", 0, 0, 0, None, b"", raw)
        assert decide(x, to=None, dlq_topic="d", max_replays=3).action is Action.SKIP


def test_a_selection_without_filters_is_everything() -> None:
    assert Selection().everything
    for kw in ({"stages": ["sink"]}, {"bots": ["b"]}, {"since": "1h"}, {"until": "1h"},
               {"reason": "x"}):  # fmt: skip
        assert not make_selection(now_ms=NOW_MS, **kw).everything, kw


def test_replaying_into_the_dead_letter_topic_is_refused() -> None:
    with pytest.raises(PlanError, match="dead-letter topic itself"):
        check_target("botwatch.dlq", "botwatch.dlq")
    check_target(None, "botwatch.dlq")
    check_target("botwatch.events", "botwatch.dlq")


def test_replayed_headers_carry_the_count_forward_and_the_worker_keeps_it() -> None:
    x = letter(replays=1, own=[("trace", b"abc"), ("tenant", b"t1")])
    headers = replay_headers(x)
    assert headers == [
        ("trace", b"abc"),
        ("tenant", b"t1"),
        (dlq.FIRST_FAILED_AT, b"2026-11-23T10:00:00.123Z"),
        (dlq.REPLAY_COUNT, b"2"),
        (REPLAY_SOURCE, b"botwatch.dlq:1:7"),
        (dlq.REPLAYED_STAGE, b"validate"),
        # The failure it replays: the record at botwatch.events 2:47, stage, replay count.
        (REPLAY_ORIGIN, b"botwatch.events:2:47:validate:1"),
    ]
    # The worker dead-letters the replayed record again: count and first failure survive,
    # the replay source, stage and origin do not.
    again = dlq.dlq_headers(
        "validate", "still bad", None, original_topic="botwatch.events", partition=0,
        offset=99, timestamp_ms=1, original_headers=headers,
        now=datetime(2026, 11, 24, tzinfo=UTC),
    )  # fmt: skip
    back = decode("botwatch.dlq", 0, 50, 1, x.key, x.value, again)
    assert back.replay_count == 2
    assert back.first_failed_at == "2026-11-23T10:00:00.123Z"
    assert REPLAY_SOURCE not in dict(back.headers)
    assert dlq.REPLAYED_STAGE not in dict(back.headers)
    assert REPLAY_ORIGIN not in dict(back.headers)
    assert decide(back, to=None, dlq_topic="botwatch.dlq", max_replays=2).action is (
        Action.QUARANTINE
    )


def test_the_replay_group_depends_on_the_arguments_only() -> None:
    a = replay_group("botwatch.dlq", {"stages": ["sink", "validate"], "to": None})
    assert a == replay_group("botwatch.dlq", {"to": None, "stages": ["sink", "validate"]})
    assert a != replay_group("botwatch.dlq", {"stages": ["sink"], "to": None})
    assert a != replay_group("other.dlq", {"stages": ["sink", "validate"], "to": None})
    assert re.fullmatch(r"botwatch-dlq-replay-[0-9a-f]{16}", a)


def test_checkpoint_round_trips_through_commit_metadata() -> None:
    cp = Checkpoint(120, {"botwatch.events": {0: 10, 5: 3}})
    text = cp.encode()
    assert len(text) < 4096  # the broker's default offset.metadata.max.bytes
    assert Checkpoint.decode(text) == cp
    assert Checkpoint.decode("") is None
    assert Checkpoint.decode("not json") is None
    assert Checkpoint.decode('{"v": 1}') is None
    # The times the run resolved (--since 3m): a restart selects with them.
    for times in ((1_795_428_000_000, None), (None, 5), (None, None)):
        timed = Checkpoint(120, {}, times)
        assert Checkpoint.decode(timed.encode()) == timed
    assert Checkpoint.decode('{"v": 1, "stop": 3, "targets": {}}') == Checkpoint(3, {}, None)


def test_windows_fresh_resumed_and_finished() -> None:
    cp = Checkpoint(100, {})
    assert window(None, None, 5, 200, restart=False) == window(-1, None, 5, 200, restart=False)
    fresh = window(None, None, 5, 200, restart=False)
    assert (fresh.start, fresh.stop, fresh.resumed) == (5, 200, False)
    resumed = window(40, cp, 0, 200, restart=False)
    assert (resumed.start, resumed.stop, resumed.resumed) == (40, 100, True)
    finished = window(100, cp, 0, 250, restart=False)
    assert (finished.start, finished.stop, finished.resumed) == (100, 250, False)
    restarted = window(40, cp, 3, 200, restart=True)
    assert (restarted.start, restarted.stop, restarted.resumed) == (3, 200, False)
    trimmed = window(2, cp, 10, 200, restart=False)  # retention removed what was left
    assert (trimmed.start, trimmed.stop) == (10, 100)


def test_resume_reads_targets_from_the_lowest_recorded_offset() -> None:
    found = resume_from(
        {
            0: Checkpoint(9, {"t": {0: 10, 1: 4}}),
            1: Checkpoint(9, {"t": {0: 7}, "u": {0: 1}}),
            2: None,
        }
    )
    assert found == {"t": {0: 7, 1: 4}, "u": {0: 1}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_holds_a_steady_sender_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, burst=5, clock=clock)
    sent = 0
    while clock.now < 10.0:
        wait = bucket.reserve()
        clock.now += wait  # the caller sleeps the debt off
        sent += 1
    assert sent == pytest.approx(1000, abs=6)
    clock.now += 60  # idle: at most `burst` saved up
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() > 0


def test_token_bucket_rejects_bad_rates() -> None:
    for rate in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError):
            TokenBucket(rate)


@pytest.mark.parametrize(
    ("text", "rate"), [("500", 500.0), ("500/s", 500.0), ("30000/m", 500.0), ("7200/h", 2.0)]
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "0", "-5/s", "5/day", "nan"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


# -- export format ------------------------------------------------------------------------


def test_export_lines_round_trip_and_edits_are_read_back() -> None:
    x = letter(value=b'{"event_id": "e-1", "bot_id": "invoice-bot", "colour": "red"}')
    line = jsonl.to_line(x)
    doc = orjson.loads(line)
    assert doc["event"]["colour"] == "red"
    assert doc["source"] == "botwatch.dlq:1:7"
    back = jsonl.from_line(line)
    assert (back.key, back.headers, back.source_id, back.replay_count) == (
        x.key,
        x.headers,
        x.source_id,
        0,
    )
    assert orjson.loads(back.value or b"") == orjson.loads(x.value or b"")
    del doc["event"]["colour"]
    fixed = jsonl.from_line(orjson.dumps(doc))
    assert orjson.loads(fixed.value or b"") == {"event_id": "e-1", "bot_id": "invoice-bot"}


@pytest.mark.parametrize("value", [b"not json {", b"\xff\x00binary", None, b"[1, 2]"])
def test_export_keeps_any_payload_exactly(value: bytes | None) -> None:
    x = letter(value=value, key=b"\xffkey")
    back = jsonl.from_line(jsonl.to_line(x))
    assert back.key == b"\xffkey"
    if value == b"[1, 2]":
        assert back.value == value  # not an object: kept as text
    else:
        assert back.value == value


@pytest.mark.parametrize(
    ("value", "as_event"),
    [
        (b'{"retry_count": 123456789012345678901234567890}', False),  # beyond 64 bits
        (b'{"a": 1, "a": 2}', False),  # a key given twice
        (b'{"d": 0.12345678901234567890123}', False),  # rounded by a float
        (b'{"n": 1E2, "s": "caf\\u00e9", "f": 2.50}', True),  # spelled otherwise, the same
    ],
)
def test_export_writes_event_only_when_it_reads_back_the_same(value: bytes, as_event: bool) -> None:
    line = jsonl.to_line(letter(value=value))
    assert ("event" in orjson.loads(line)) is as_event
    back = jsonl.from_line(line).value
    if as_event:
        assert orjson.loads(back or b"") == orjson.loads(value)
    else:
        assert back == value


def test_export_keeps_header_values_that_are_not_utf8() -> None:
    x = letter(own=[("h-bin", b"\xff\x00\x80"), ("h-text", "caf\u00e9".encode())])
    doc = orjson.loads(jsonl.to_line(x))
    assert ["h-text", "caf\u00e9"] in doc["headers"]
    assert ["h-bin", {"base64": "/wCA"}] in doc["headers"]
    assert jsonl.from_line(orjson.dumps(doc)).headers == x.headers


def test_a_key_edited_beside_its_exact_bytes_is_refused() -> None:
    doc = orjson.loads(jsonl.to_line(letter(key=b"\xffbot")))
    assert jsonl.from_line(orjson.dumps(doc)).key == b"\xffbot"
    doc["key"] = "invoice-bot"
    with pytest.raises(jsonl.LineError, match="key and key_base64 disagree"):
        jsonl.from_line(orjson.dumps(doc), 2)
    del doc["key_base64"]
    assert jsonl.from_line(orjson.dumps(doc)).key == b"invoice-bot"


def test_a_value_edited_beside_another_form_of_it_is_refused() -> None:
    """An export writes one of event, value and value_base64: a fixed value added beside
    another was silently left out for the old bytes."""
    doc = orjson.loads(jsonl.to_line(letter(value=b"\xff\xfe{broken")))
    assert "value_base64" in doc and "value" not in doc
    doc["value"] = '{"fixed": true}'
    with pytest.raises(jsonl.LineError, match="line 2: value and value_base64 each hold the"):
        jsonl.from_line(orjson.dumps(doc), 2)
    del doc["value_base64"]
    assert jsonl.from_line(orjson.dumps(doc)).value == b'{"fixed": true}'
    event = orjson.loads(jsonl.to_line(letter()))
    event["value"] = "{}"
    with pytest.raises(jsonl.LineError, match="event and value each hold the record's value"):
        jsonl.from_line(orjson.dumps(event))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{", "line 3: not JSON"),
        (b"[]", "line 3: not a JSON object"),
        (b'{"source": "x", "headers": []}', "source 'x'"),
        (b'{"source": "t:0:1"}', "not an exported dead letter"),
        (b'{"source": "t:0:1", "headers": [], "value_base64": "!!"}', "not an exported"),
    ],
)
def test_broken_import_lines_are_named(line: bytes, message: str) -> None:
    with pytest.raises(jsonl.LineError, match=message):
        jsonl.from_line(line, 3)


def test_a_letter_refused_for_its_key_is_the_bot_of_its_event() -> None:
    value = b'{"event_id": "e-1", "bot_id": "invoice-bot"}'
    keyed_wrong = letter(key=b"other", value=value, reason=dlq.miskeyed_reason(b"other", "x"))
    assert keyed_wrong.bot == "invoice-bot"  # what a replay keys it by, and --bot selects
    assert letter(key=b"other", value=value).bot == "other"  # the key, by contract
    assert letter(key=b"\xffbin\x00", value=b"[").bot == "\\xffbin\\x00"
    assert letter(key=None, value=b"[").bot is None
    # The job failure and the index's refusal of a valid event are its bot's, keyed wrong
    # or not (as the dead-letter index files them): ``dlq list --bot invoice-bot`` finds them.
    for stage in ("job_failure", "sink"):
        assert letter(stage, key=b"other", value=value).bot == "invoice-bot"
        assert Selection(bots=frozenset({"invoice-bot"})).matches(
            letter(stage, key=b"other", value=value)
        )


def test_an_import_file_saved_with_a_byte_order_mark_is_read(tmp_path: Any) -> None:
    from botwatch.commands.dlq import _read_lines

    path = tmp_path / "fixed.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl.to_line(letter()) + b"\n" + jsonl.to_line(letter()))
    assert [x.source_id for x in _read_lines(path)] == ["botwatch.dlq:1:7"] * 2
