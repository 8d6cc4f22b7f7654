"""Generator -> Kafka -> worker -> OpenSearch, judged by the generator's ground truth.

What operators see must be complete: one event document per valid event (each event_id
once), one stats document per closed window matching the truth, one dead-letter document
per malformed record (plus the job-failure copies), and nothing duplicated by a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opensearchpy import helpers
from pipeline import (
    assert_dead_letters_match,
    collect_stats,
    generate,
    make_pipeline,
    truth_windows,
)
from pipeline import worker as pipeline_worker

from botwatch.settings import Settings


@pytest.fixture
def pipeline(stack: Settings, make_topic: Any, tmp_path: Path, index_prefix: str) -> dict[str, Any]:
    run = make_pipeline(stack, make_topic, tmp_path)
    run["env"]["BOTWATCH_INDEX_PREFIX"] = index_prefix
    return run


def _all(opensearch: Any, index: str) -> list[dict[str, Any]]:
    opensearch.indices.refresh(index=index)
    return list(helpers.scan(opensearch, index=index, query={"query": {"match_all": {}}}))


def test_everything_read_is_searchable_once(pipeline: dict[str, Any], opensearch: Any) -> None:
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        truth = generate(pipeline, 20_000)
        expected_windows = truth_windows(truth)
        collect_stats(pipeline, len(expected_windows))
        ready = w.get("/ready")
        assert ready[0] == 200 and b"OpenSearch" in ready[1], ready
    finally:
        assert w.stop() == 0, w.tail()

    events = _all(opensearch, f"{prefix}-events-*")
    ids = [doc["_id"] for doc in events]
    assert len(ids) == len(set(ids)) == truth["counts"]["valid"]
    assert set(ids) == set(truth["event_ids"])
    assert all(doc["_source"]["event_id"] == doc["_id"] for doc in events)
    errors = {doc["_id"] for doc in events if "-events-errors-" in doc["_index"]}
    assert errors == {
        doc["_id"] for doc in events if doc["_source"]["level"] in {"error", "critical"}
    }

    stats = {
        (doc["_source"]["bot_id"], doc["_source"]["window_start"]): doc["_source"]
        for doc in _all(opensearch, f"{prefix}-stats-*")
    }
    assert sorted(stats) == sorted(expected_windows)
    for key, want in expected_windows.items():
        for field in ("count", "errors", "successes", "failures", "retries"):
            assert stats[key][field] == want[field], (key, field)

    letters = _all(opensearch, f"{prefix}-dlq-*")
    malformed = [doc for doc in letters if doc["_source"]["stage"] != "job_failure"]
    assert len(malformed) == truth["counts"]["malformed"]
    by_origin = {
        (doc["_source"]["original_partition"], doc["_source"]["original_offset"]): doc["_source"]
        for doc in malformed
    }
    for m in truth["malformed"]:
        assert by_origin[(m["partition"], m["offset"])]["stage"] == m["stage"]
    assert_dead_letters_match(pipeline, truth)
