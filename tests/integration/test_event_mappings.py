"""The event mappings in the real OpenSearch: valid events are indexed and found, strays refused."""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy.exceptions import RequestError

from schemas import MAX_MESSAGE_BYTES, event_index_mappings, timestamp_ms, validate_event


def full_event(event_id: str = "0192f3c2-7a1b-7c3d-8e4f-0123456789ab") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "timestamp": "2026-11-23T10:00:00.123+02:00",
        "bot_id": "invoice-bot",
        "job_id": "invoice-bot:42",
        "level": "error",
        "message": "Invoice upload failed for customer ACME after three retries",
        "status": "failure",
        "duration_ms": 1234.5,
        "retry_count": 3,
        "error": {
            "type": "TimeoutError",
            "message": "read timed out",
            "stack": 'Traceback (most recent call last):\n  File "bot.py", line 3, in run\n',
        },
        "meta": {
            "customer": "acme",
            "pages": [1, 2, 3],
            "request": {"method": "POST", "attempts": None},
            "truncated": False,
        },
        "host": "worker-1",
        "env": "prod",
        "schema_version": 1,
    }


@pytest.fixture
def events_index(opensearch: Any, make_index: Any) -> str:
    name: str = make_index("events")
    opensearch.indices.create(
        index=name,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": event_index_mappings(),
        },
    )
    return name


def put(opensearch: Any, index: str, event: dict[str, Any]) -> None:
    validate_event(event)
    opensearch.index(index=index, id=event["event_id"], body=event, refresh=True)


def search_ids(opensearch: Any, index: str, query: dict[str, Any]) -> list[str]:
    found = opensearch.search(index=index, body={"query": query})
    return [hit["_id"] for hit in found["hits"]["hits"]]


def test_the_index_takes_the_mappings_as_given(opensearch: Any, events_index: str) -> None:
    stored = opensearch.indices.get_mapping(index=events_index)[events_index]["mappings"]
    assert stored["dynamic"] == "strict"
    assert stored["properties"]["meta"]["type"] == "flat_object"
    assert set(stored["properties"]) == set(event_index_mappings()["properties"])


def test_a_full_event_is_found_by_bot_id_and_by_a_word_of_its_message(
    opensearch: Any, events_index: str
) -> None:
    event = full_event()
    put(opensearch, events_index, event)
    other = {
        **full_event("other"),
        "bot_id": "crawler",
        "message": "ok",
        "error": {"type": "KeyError"},
        "meta": {"customer": "globex"},
    }
    put(opensearch, events_index, other)

    assert search_ids(opensearch, events_index, {"term": {"bot_id": "invoice-bot"}}) == [
        event["event_id"]
    ]
    assert search_ids(opensearch, events_index, {"match": {"message": "upload"}}) == [
        event["event_id"]
    ]
    assert search_ids(opensearch, events_index, {"term": {"error.type": "TimeoutError"}}) == [
        event["event_id"]
    ]
    assert search_ids(opensearch, events_index, {"term": {"meta.customer": "acme"}}) == [
        event["event_id"]
    ]
    stored = opensearch.get(index=events_index, id=event["event_id"])["_source"]
    assert stored == event


def test_a_document_with_an_unknown_top_level_field_is_refused(
    opensearch: Any, events_index: str
) -> None:
    with pytest.raises(RequestError) as caught:
        opensearch.index(index=events_index, body={**full_event(), "customer": "acme"})
    assert caught.value.error == "strict_dynamic_mapping_exception"
    with pytest.raises(RequestError) as caught:
        opensearch.index(index=events_index, body={**full_event(), "error": {"code": 500}})
    assert caught.value.error == "strict_dynamic_mapping_exception"


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:00:00.1Z",
        "2026-11-23T12:00:00.123456789+02:00",
        "2026-11-23T10:00:00-00:00",
        "1969-12-31T23:59:59.999Z",
        "2024-02-29T00:00:00+18:00",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999-18:00",
    ],
)
def test_opensearch_reads_every_timestamp_form_as_timestamp_ms_does(
    opensearch: Any, events_index: str, timestamp: str
) -> None:
    put(opensearch, events_index, {**full_event(), "timestamp": timestamp})
    found = opensearch.search(
        index=events_index,
        body={
            "query": {"ids": {"values": [full_event()["event_id"]]}},
            "docvalue_fields": [{"field": "timestamp", "format": "epoch_millis"}],
        },
    )
    (hit,) = found["hits"]["hits"]
    assert int(hit["fields"]["timestamp"][0]) == timestamp_ms(timestamp)


def test_events_at_the_size_limits_index(opensearch: Any, events_index: str) -> None:
    event = {
        **full_event(),
        "message": "word " * (MAX_MESSAGE_BYTES // 5) + "end",
        "host": "h" * 5000,
        "error": {"type": "E" * 5000, "message": "m", "stack": "s" * 100_000},
        "meta": {"blob": "b" * 16_000},
    }
    put(opensearch, events_index, event)
    assert search_ids(opensearch, events_index, {"match": {"message": "end"}}) == [
        event["event_id"]
    ]
