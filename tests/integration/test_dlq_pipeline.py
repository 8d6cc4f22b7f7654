"""`botwatch dlq` on dead letters a real worker made from generated events, into OpenSearch.

One worker run: the generator's malformed records give ``decode``/``validate`` letters, its
failed jobs ``job_failure`` ones, and a mapping-breaking template (``host`` as a number)
makes OpenSearch reject every generated event (``sink``). The test then checks what
`dlq list` / `--summary` / `show` report against the topic read with kcat, relaxes the cause
(template and broken index removed) and replays the ``sink`` letters twice, fixes records by
export -> edit -> import, and replays unfixable ones until the loop guard quarantines them.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from opensearchpy import helpers
from pipeline import collect_stats, generate, make_pipeline
from pipeline import worker as pipeline_worker
from support import headers_of, put_breaking_template, read_topic
from test_end_to_end import _event, _produce

from botwatch.cli import main
from botwatch.settings import Settings


@pytest.fixture
def pipeline(stack: Settings, make_topic: Any, tmp_path: Path, index_prefix: str) -> dict[str, Any]:
    run = make_pipeline(stack, make_topic, tmp_path)
    run["env"]["BOTWATCH_INDEX_PREFIX"] = index_prefix
    return run


def dlq_cli(pipeline: dict[str, Any], *args: str) -> Result:
    return CliRunner().invoke(main, ["dlq", *args], env=pipeline["env"], catch_exceptions=False)


def letters(pipeline: dict[str, Any]) -> list[dict[str, Any]]:
    return read_topic(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["dlq"])


def stage_of(letter: dict[str, Any]) -> str:
    return headers_of(letter)["botwatch.dlq.stage"]


def wait_for(what: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def event_ids(opensearch: Any, prefix: str) -> Counter[str]:
    opensearch.indices.refresh(index=f"{prefix}-events-*", ignore_unavailable=True)
    docs = helpers.scan(opensearch, index=f"{prefix}-events-*", ignore_unavailable=True,
                        query={"query": {"match_all": {}}})  # fmt: skip
    return Counter(d["_id"] for d in docs)


def test_inspect_fix_and_replay(pipeline: dict[str, Any], opensearch: Any) -> None:
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    bootstrap = pipeline["settings"].kafka_bootstrap
    put_breaking_template(opensearch, prefix)
    colourful = [_event(n, colour="red") for n in range(5)]  # unknown field: validate
    _produce(bootstrap, pipeline["topics"]["events"], colourful)
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        truth = generate(pipeline, 600)
        total = truth["counts"]["records"] + len(colourful)
        wait_for(lambda: w.metric("botwatch_records_in_total") >= total)
        expected_sink = truth["counts"]["valid"]
        wait_for(lambda: sum(
            headers_of(e)["botwatch.dlq.stage"] == "sink" for e in letters(pipeline)
        ) >= expected_sink)  # fmt: skip

        # -- list, summary and show against the topic itself -----------------------------
        raw = letters(pipeline)
        stages = Counter(headers_of(e)["botwatch.dlq.stage"] for e in raw)
        assert set(stages) == {"decode", "validate", "sink", "job_failure"}, stages
        summary = orjson.loads(dlq_cli(pipeline, "list", "--summary", "--json").output)
        assert summary["total"] == len(raw)
        assert summary["stages"] == dict(stages)
        bots = Counter(e["key"] or "(no bot)" for e in raw)
        assert sum(summary["bots"].values()) == len(raw)
        some_bot = next(b for b in bots if b.startswith("bot-"))
        assert summary["bots"][some_bot] == bots[some_bot]
        text = dlq_cli(pipeline, "list", "--summary").output
        assert "by stage:" in text and "by reason:" in text and "by bot:" in text
        for stage, n in stages.items():
            listed = dlq_cli(pipeline, "list", "--stage", stage, "--limit", "10000", "--json")
            assert len(listed.output.splitlines()) == n, stage
        only = dlq_cli(
            pipeline, "list", "--stage", "validate", "--bot", "edge-bot",
            "--reason", "colour", "--since", "1h", "--until", "now", "--json",
        )  # fmt: skip
        assert len(only.output.splitlines()) == len(colourful)
        none = dlq_cli(pipeline, "list", "--until", "2h")
        assert "no dead letter" in none.output
        table = dlq_cli(pipeline, "list", "--limit", "3").output.splitlines()
        assert table[0].split()[:3] == ["POSITION", "FAILED", "AT"] and len(table) == 5
        first = raw[0]
        shown = dlq_cli(pipeline, "show", f"{first['partition']}:{first['offset']}").output
        assert headers_of(first)["botwatch.dlq.reason"] in shown
        assert f"botwatch.dlq.original.topic: {pipeline['topics']['events']}" in shown
        by_id = dlq_cli(pipeline, "show", colourful[0]["event_id"])
        assert by_id.exit_code == 0 and '"colour": "red"' in by_id.output

        # -- relax the cause and replay the sink letters, twice --------------------------
        opensearch.indices.delete_index_template(name=f"{prefix}-breaking")
        for row in opensearch.cat.indices(index=f"{prefix}-events-*", format="json", h="index"):
            opensearch.indices.delete(index=row["index"])
        replay = ["replay", "--stage", "sink", "--yes"]
        done = dlq_cli(pipeline, *replay)
        assert done.exit_code == 0, done.output
        assert f"sent {expected_sink:,}" in done.output
        wait_for(lambda: len(event_ids(opensearch, prefix)) >= expected_sink)
        again = dlq_cli(pipeline, *replay)
        assert again.exit_code == 0 and "nothing to replay" in again.output
        restarted = dlq_cli(pipeline, *replay, "--restart")
        assert f"sent {expected_sink:,}" in restarted.output  # on purpose: OpenSearch dedups
        wait_for(lambda: w.metric("botwatch_records_in_total") >= total + 2 * expected_sink)
        time.sleep(2)
        indexed = event_ids(opensearch, prefix)
        assert set(indexed) == set(truth["event_ids"])
        assert set(indexed.values()) == {1}
        # Each replayed sink letter was indexed again, never counted in a window again.
        assert w.metric("botwatch_replayed_reindexed_total") == 2 * expected_sink

        # -- export, edit, import --------------------------------------------------------
        out = pipeline["dir"] / "colour.jsonl"
        exported = dlq_cli(pipeline, "export", "--reason", "colour", "--out", str(out))
        assert f"exported {len(colourful)}" in exported.output
        fixed = []
        for line in out.read_bytes().splitlines():
            doc = orjson.loads(line)
            doc["event"]["meta"] = {"colour": doc["event"].pop("colour")}
            fixed.append(orjson.dumps(doc))
        out.write_bytes(b"\n".join(fixed) + b"\n")
        imported = dlq_cli(pipeline, "import", str(out), "--yes")
        assert imported.exit_code == 0, imported.output
        want = {e["event_id"] for e in colourful}
        wait_for(lambda: want <= set(event_ids(opensearch, prefix)))

        # -- the loop guard: what keeps failing is quarantined ---------------------------
        decode_n = stages["decode"]
        guard = ["replay", "--stage", "decode", "--max-replays", "1", "--yes"]
        sent = dlq_cli(pipeline, *guard)
        assert sent.exit_code == 0 and f"sent {decode_n}" in sent.output, sent.output
        wait_for(lambda: sum(
            headers_of(e).get("botwatch.dlq.replay_count") == "1" for e in letters(pipeline)
        ) >= decode_n)  # fmt: skip
        held = dlq_cli(pipeline, *guard)
        assert held.exit_code == 2, held.output
        assert f"quarantined: {decode_n}" in held.output and "sent 0" in held.output
    finally:
        assert w.stop() == 0, w.tail()


def test_events_not_keyed_by_their_bot_are_indexed_then_replayed_into_their_window(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """kcat, a producer nobody here wrote, sends events without a key (as a log shipper
    configured without one would): the worker indexes them, keeps them out of the window of
    the bot (whose keyed events sit on another partition) and dead-letters them; a replay
    keys them by their bot, and the window then counts every event once, even when a second
    replay run sends them again."""
    pipeline["env"]["BOTWATCH_IDLE_CLOSE_S"] = "600"  # the window must wait for the replay
    bootstrap = pipeline["settings"].kafka_bootstrap
    events_topic = pipeline["topics"]["events"]
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    keyed = [_event(n) for n in range(5)]  # bot edge-bot, keyed edge-bot, one window
    keyless = [_event(n, level="error") for n in range(5, 12)]
    keyless.append(_event(12, level="error", status="failure", job_id="job-12"))
    _produce(bootstrap, events_topic, keyed)
    lines = b"".join(orjson.dumps(e) + b"\n" for e in keyless)
    sent = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", events_topic],
                          input=lines, capture_output=True, timeout=60, check=False)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    total = len(keyed) + len(keyless)

    w = pipeline_worker(pipeline, "keys").start()
    try:
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", total)
        assert w.metric("botwatch_miskeyed_events_total") == len(keyless)
        assert w.metric('botwatch_dead_letters_total{stage="validate"}') == len(keyless)
        assert w.metric('botwatch_dead_letters_total{stage="job_failure"}') == 1
        wait_for(lambda: len(event_ids(opensearch, prefix)) == total)  # all of them searchable
        found = [x for x in letters(pipeline) if stage_of(x) == "validate"]
        assert sorted(orjson.loads(x["payload"])["event_id"] for x in found) == sorted(
            e["event_id"] for e in keyless
        )
        for x in found:
            assert x["key"] is None  # the record as it was sent
            reason = headers_of(x)["botwatch.dlq.reason"]
            assert reason.startswith("record key: must be the event's bot_id 'edge-bot'")

        done = dlq_cli(pipeline, "replay", "--stage", "validate", "--yes")
        assert done.exit_code == 0, done.output
        assert f"sent {len(keyless)}" in done.output
        w.wait_metric("botwatch_records_in_total", total + len(keyless))
        # Another selection is another run, with progress of its own: it sends them again,
        # and the window counts each event once.
        again = dlq_cli(pipeline, "replay", "--reason", "^record key", "--yes")
        assert again.exit_code == 0, again.output
        assert f"sent {len(keyless)}" in again.output
        w.wait_metric("botwatch_records_in_total", total + 2 * len(keyless))
        assert w.metric("botwatch_duplicates_skipped_total") == len(keyless)
        # Two minutes later: the watermark passes the window's end (lateness 30 s).
        _produce(bootstrap, events_topic, [_event(99, timestamp="2026-11-23T10:02:00.000Z")])
        stats = collect_stats(pipeline, 1)
    finally:
        assert w.stop() == 0, w.tail()
    window = stats[("edge-bot", "2026-11-23T10:00:00Z")]
    assert (window["count"], window["errors"], window["failures"]) == (total, len(keyless), 1)
    # The failed job was copied for review once, when it was first read.
    assert [stage_of(x) for x in letters(pipeline)].count("job_failure") == 1
    assert window["late_events_excluded"] == 0
    replayed = [x for x in letters(pipeline) if x["key"] is not None]
    assert replayed == []  # keyed right, nothing failed again
    indexed = event_ids(opensearch, prefix)
    assert len(indexed) == total + 1 and set(indexed.values()) == {1}
