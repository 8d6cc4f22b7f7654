"""The load generator's pure logic: determinism, shares, incidents, late events, malformed kinds,
and the ground truth's arithmetic."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from botwatch.cli import main
from producers.generator import (
    LATE,
    LATE_BEHIND_MS,
    MALFORMED_KINDS,
    VALID,
    WINDOW_MS,
    Generator,
    GeneratorConfig,
    GeneratorError,
    Incident,
    Record,
    Truth,
    bot_ids,
    duration_summary,
    format_timestamp,
    malformed_value,
)
from schemas import ERROR_LEVELS, EventError, decode_event, timestamp_ms
from schemas.rank import nearest_rank

START = timestamp_ms("2026-11-23T10:00:00Z")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def run(count: int, **overrides: Any) -> tuple[Generator, list[Record]]:
    config = GeneratorConfig(**{"start_ms": START, "seed": 11, **overrides})
    generator = Generator(config)
    return generator, generator.take(count)


def test_same_seed_same_records_and_chunking_does_not_matter() -> None:
    _, one = run(5000, malformed=0.05, late=0.05, rate=10)
    generator = Generator(
        GeneratorConfig(start_ms=START, seed=11, malformed=0.05, late=0.05, rate=10)
    )
    two = generator.take(1234) + generator.take(3766)
    assert [r.value for r in one] == [r.value for r in two]
    _, other = run(5000, malformed=0.05, late=0.05, rate=10, seed=12)
    assert [r.value for r in one] != [r.value for r in other]


def test_valid_events_pass_decode_and_carry_their_facts() -> None:
    _, records = run(20_000, bots=7, malformed=0.1, late=0.05, rate=20)
    valid = [r for r in records if r.kind in (VALID, LATE)]
    assert len(valid) > 15_000
    for record in valid:
        event = decode_event(record.value)
        assert event["event_id"] == record.event_id
        assert event["bot_id"].encode() == record.key
        assert event["level"] == record.level
        assert event.get("status") == record.status
        assert event.get("duration_ms") == record.duration_ms
        assert timestamp_ms(event["timestamp"]) == record.timestamp_ms
        assert event["timestamp"] == format_timestamp(record.timestamp_ms)
        assert UUID7.match(record.event_id)
    ids = [r.event_id for r in records]
    assert len(set(ids)) == len(ids)


def test_on_time_events_are_stamped_start_plus_index_over_rate() -> None:
    _, records = run(3000, rate=250, malformed=0.1)
    for record in records:
        if record.kind != LATE:
            assert record.timestamp_ms == START + record.seq * 1000 // 250
    assert [r.seq for r in records] == list(range(3000))


def test_bots_have_ids_envs_and_hosts() -> None:
    generator, records = run(2000, bots=12)
    assert generator.bot_ids == [f"bot-{i:03d}" for i in range(12)]
    assert bot_ids(1001)[-1] == "bot-1000"
    assert {r.bot for r in records} == set(range(12))
    event = orjson.loads(records[0].value)
    assert event["env"] in {"prod", "staging", "dev"}
    assert event["host"].startswith(event["env"])


def test_shares_match_the_parameters_over_a_large_sample() -> None:
    _, records = run(200_000, bots=20, rate=50, error_rate=0.08, failure_rate=0.2, malformed=0.03)
    kinds = Counter("malformed" if r.kind in MALFORMED_KINDS else r.kind for r in records)
    assert kinds["malformed"] / len(records) == pytest.approx(0.03, abs=0.003)
    valid = [r for r in records if r.kind == VALID]
    errors = sum(r.level in ERROR_LEVELS for r in valid)
    assert errors / len(valid) == pytest.approx(0.08, abs=0.005)
    statuses = Counter(r.status for r in valid)
    finished = statuses["success"] + statuses["failure"]
    assert finished > 10_000
    assert statuses["failure"] / finished == pytest.approx(0.2, abs=0.015)
    assert statuses["started"] >= finished
    assert statuses["retry"] > 0 and statuses["heartbeat"] > 0
    levels = Counter(r.level for r in valid)
    assert set(levels) == {"debug", "info", "warning", "error", "critical"}
    # Successes never carry an error level; every finished job has a duration.
    assert all(r.level not in ERROR_LEVELS for r in valid if r.status == "success")
    assert all(r.duration_ms is not None for r in valid if r.status in ("success", "failure"))


def test_jobs_follow_their_lifecycle() -> None:
    _, records = run(30_000, bots=5, rate=20, failure_rate=0.3, error_rate=0.1)
    open_jobs: dict[str, str] = {}
    retries: dict[str, int] = {}
    for record in records:
        event = orjson.loads(record.value)
        job, status = event.get("job_id"), event.get("status")
        if status == "started":
            assert event["bot_id"] not in open_jobs
            open_jobs[event["bot_id"]] = job
            retries[job] = 0
        elif job is not None:
            assert open_jobs.get(event["bot_id"]) == job
            if status == "retry":
                retries[job] += 1
                assert event["retry_count"] == retries[job]
            if status in ("success", "failure"):
                assert event.get("retry_count", 0) == retries[job]
                del open_jobs[event["bot_id"]]
        else:
            assert status in (None, "heartbeat")


def test_incident_raises_error_rate_only_inside_its_span() -> None:
    incident = Incident.parse("bot-002:600:1200:0.6")
    _, records = run(150_000, bots=5, rate=50, error_rate=0.02, incidents=(incident,))
    inside_lo, inside_hi = START + 600_000, START + 1_200_000

    def share(bot: int, inside: bool) -> float:
        picked = [
            r
            for r in records
            if r.kind == VALID
            and r.bot == bot
            and (inside_lo <= r.timestamp_ms < inside_hi) == inside
        ]
        assert len(picked) > 2000
        return sum(r.level in ERROR_LEVELS for r in picked) / len(picked)

    assert share(2, inside=True) == pytest.approx(0.6, abs=0.04)
    assert share(2, inside=False) == pytest.approx(0.02, abs=0.01)
    assert share(1, inside=True) == pytest.approx(0.02, abs=0.015)


def test_late_events_are_180s_behind_their_bot_and_only_after_180s() -> None:
    _, records = run(60_000, bots=6, rate=50, late=0.05, malformed=0.02)
    latest = [START - 1] * 6
    late_count = eligible = 0
    for record in records:
        nominal = START + record.seq * 1000 // 50
        if record.kind == LATE:
            late_count += 1
            assert nominal >= START + LATE_BEHIND_MS
            assert record.timestamp_ms <= latest[record.bot] - LATE_BEHIND_MS
            assert record.timestamp_ms >= START
            # Its window closed: the watermark (latest - 30 s) is past the window end.
            window_end = record.timestamp_ms - record.timestamp_ms % WINDOW_MS + WINDOW_MS
            assert latest[record.bot] - 30_000 > window_end
            assert decode_event(record.value)["bot_id"] == f"bot-{record.bot:03d}"
        if record.kind in (VALID, LATE) and latest[record.bot] >= START + LATE_BEHIND_MS:
            eligible += 1
        if record.kind == VALID:
            latest[record.bot] = record.timestamp_ms
    assert late_count / eligible == pytest.approx(0.05, abs=0.006)


def test_no_late_events_before_180s_of_event_time() -> None:
    _, records = run(17_000, rate=100, late=0.5)  # 170 s of event time
    assert not [r for r in records if r.kind == LATE]


@pytest.mark.parametrize("kind", sorted(MALFORMED_KINDS))
def test_every_malformed_kind_is_rejected_at_its_stage_and_path(kind: str) -> None:
    _, records = run(50, rate=5)
    base = orjson.loads(records[0].value)
    base.update(job_id="bot-000-job-x", status="retry", duration_ms=10, retry_count=1)
    decode_event(orjson.dumps(base))  # the base itself is valid
    stage, path = MALFORMED_KINDS[kind]
    with pytest.raises(EventError) as caught:
        decode_event(malformed_value(kind, base))
    assert (caught.value.stage, caught.value.path) == (stage, path)


def test_a_run_makes_every_malformed_kind_keyed_by_a_real_bot() -> None:
    generator, records = run(40_000, bots=4, malformed=0.2)
    broken = [r for r in records if r.kind in MALFORMED_KINDS]
    assert {r.kind for r in broken} == set(MALFORMED_KINDS)
    for record in broken:
        assert record.key.decode() in generator.bot_ids
        with pytest.raises(EventError) as caught:
            decode_event(record.value)
        assert caught.value.stage == MALFORMED_KINDS[record.kind].stage
        assert caught.value.path == MALFORMED_KINDS[record.kind].path


def test_duration_summary_uses_the_nearest_rank() -> None:
    values = [50, 10, 40, 20, 30, 100, 90, 80, 70, 60]
    summary = duration_summary(values)
    # sorted: 10 20 30 40 50 60 70 80 90 100; the ceil(q * 10)-th
    assert summary["count"] == 10
    assert summary["sum"] == 550
    assert (summary["min"], summary["max"], summary["mean"]) == (10, 100, 55.0)
    assert summary["p50"] == 50  # the 5th
    assert summary["p95"] == 100  # the 10th (the 9.5th rounded up)
    assert summary["p99"] == 100
    # Two jobs, one slow: p95 is the slow one (it was the fast one, 0).
    two = duration_summary([0, 1234.5])
    assert (two["p50"], two["p95"], two["p99"]) == (0, 1234.5, 1234.5)


@pytest.mark.parametrize(
    ("q", "n", "index"),
    [(0.5, 10, 4), (0.95, 20, 18), (0.07, 100, 6), (0.99, 1, 0), (0.0, 5, 0), (1.0, 5, 4)],
)
def test_nearest_rank_is_not_pushed_past_a_whole_number_by_rounding(
    q: float, n: int, index: int
) -> None:
    assert nearest_rank(q, n) == index
    assert duration_summary([7])["p99"] == 7
    assert duration_summary([])["p50"] is None


def _record(seq: int, bot: int, at: str, level: str, **facts: Any) -> Record:
    kind = facts.pop("kind", VALID)
    return Record(
        seq,
        bot,
        f"bot-{bot:03d}".encode(),
        b"{}",
        kind,
        f"id-{seq}",
        timestamp_ms(at),
        level,
        facts.get("status"),
        facts.get("duration_ms"),
    )


def test_truth_counts_a_hand_checked_example() -> None:
    config = GeneratorConfig(start_ms=START, bots=2, rate=1)
    truth = Truth(config, Generator(config))
    records = [
        _record(0, 0, "2026-11-23T10:00:00.000Z", "info", status="started"),
        _record(1, 0, "2026-11-23T10:00:10.000Z", "warning", status="retry", duration_ms=300),
        _record(2, 0, "2026-11-23T10:00:59.999Z", "error"),
        _record(3, 0, "2026-11-23T10:01:00.000Z", "info", status="success", duration_ms=1200),
        _record(4, 1, "2026-11-23T10:00:30.000Z", "critical", status="failure", duration_ms=900),
        _record(5, 1, "2026-11-23T10:00:31.000Z", "debug", status="heartbeat"),
        _record(6, 0, "2026-11-23T09:55:00.000Z", "info", kind=LATE),
        _record(7, 1, "2026-11-23T10:00:32.000Z", "info", kind="level_int"),
    ]
    for offset, record in enumerate(records):
        truth.add(record, partition=offset % 2, offset=100 + offset)
    data = truth.as_dict(topic="t", planned=8)
    assert data["counts"] == {"records": 8, "valid": 7, "on_time": 6, "late": 1, "malformed": 1}
    assert data["late_per_bot"] == {"bot-000": 1}
    assert data["event_ids"] == [f"id-{i}" for i in range(7)]
    assert data["malformed"] == [
        {
            "kind": "level_int",
            "stage": "validate",
            "path": "level",
            "key": "bot-001",
            "partition": 1,
            "offset": 107,
        }
    ]
    first = data["windows"]["bot-000"]["2026-11-23T10:00:00Z"]
    assert first["window_end"] == "2026-11-23T10:01:00Z"
    assert (first["count"], first["errors"], first["retries"]) == (3, 1, 1)
    assert (first["successes"], first["failures"], first["failure_rate"]) == (0, 0, 0.0)
    assert first["levels"] == {"debug": 0, "info": 1, "warning": 1, "error": 1, "critical": 0}
    assert first["duration_ms"]["count"] == 1 and first["duration_ms"]["p99"] == 300
    second = data["windows"]["bot-000"]["2026-11-23T10:01:00Z"]
    assert (second["count"], second["successes"], second["duration_ms"]["sum"]) == (1, 1, 1200)
    other = data["windows"]["bot-001"]["2026-11-23T10:00:00Z"]
    assert (other["count"], other["errors"], other["failures"]) == (2, 1, 1)
    assert (other["error_rate"], other["failure_rate"]) == (0.5, 1.0)
    assert set(data["windows"]) == {"bot-000", "bot-001"}
    assert data["params"]["start"] == "2026-11-23T10:00:00.000Z"


def test_truth_of_a_run_adds_up() -> None:
    generator, records = run(30_000, bots=8, rate=40, malformed=0.05, late=0.05)
    truth = Truth(generator.config, generator)
    for offset, record in enumerate(records):
        truth.add(record, 0, offset)
    data = truth.as_dict()
    windows = [w for bot in data["windows"].values() for w in bot.values()]
    assert sum(w["count"] for w in windows) == data["counts"]["on_time"]
    assert sum(sum(w["levels"].values()) for w in windows) == data["counts"]["on_time"]
    assert data["counts"]["late"] == sum(r.kind == LATE for r in records) > 0
    assert sum(data["late_per_bot"].values()) == data["counts"]["late"]
    durations = [r.duration_ms for r in records if r.kind == VALID and r.duration_ms is not None]
    assert sum(w["duration_ms"]["count"] for w in windows) == len(durations)
    assert sum(w["duration_ms"]["sum"] for w in windows) == sum(durations)
    for window in windows:
        assert timestamp_ms(window["window_start"]) % WINDOW_MS == 0
    assert data["counts"]["records"] == len(records)
    assert len(data["event_ids"]) == data["counts"]["valid"]


def test_incident_and_config_errors() -> None:
    assert Incident.parse("bot-001:10:20:0.5") == Incident("bot-001", 10.0, 20.0, 0.5)
    for spec in ("bot-001:10:20", "bot-001:20:10:0.5", "bot-001:a:20:0.5", "bot-001:0:5:2"):
        with pytest.raises(GeneratorError):
            Incident.parse(spec)
    with pytest.raises(GeneratorError, match=r"bot-000 \.\. bot-002"):
        GeneratorConfig(start_ms=START, bots=3, incidents=(Incident.parse("bot-009:0:5:1"),))
    with pytest.raises(GeneratorError):
        GeneratorConfig(start_ms=START, malformed=1.5)


def test_cli_rejects_bad_combinations_before_connecting() -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["generate", "--events", "5", "--duration", "1"])
    assert both.exit_code == 2 and "exactly one" in both.output
    zero = runner.invoke(main, ["generate", "--duration", "1", "--rate", "0"])
    assert zero.exit_code == 2
    start = runner.invoke(main, ["generate", "--events", "5", "--start", "2026-11-23T10:00:00"])
    assert start.exit_code == 2 and "--start" in start.output
    incident = runner.invoke(main, ["generate", "--events", "5", "--incident", "nobody:0:1:1"])
    assert incident.exit_code == 2 and "bot-000" in incident.output
