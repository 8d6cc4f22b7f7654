"""The checked-in JSON Schema and index mappings say what the Python contract says."""

from __future__ import annotations

from typing import Any, get_args

from jsonschema import Draft202012Validator

from schemas import (
    BOT_ID_RE,
    ERROR_FIELDS,
    FIELDS,
    LEVELS,
    MAX_EVENT_ID_CHARS,
    MAX_JOB_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_RETRY_COUNT,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    STATUSES,
    TIMESTAMP_RE,
    ErrorInfo,
    Event,
    Level,
    Status,
    event_index_mappings,
    event_json_schema,
)

# What a minimal OpenSearch 2.19 distribution has without plugins or mapper-extras.
CORE_FIELD_TYPES = {
    "keyword",
    "text",
    "date",
    "long",
    "double",
    "integer",
    "boolean",
    "object",
    "flat_object",
}


def test_constants_match_the_design() -> None:
    assert SCHEMA_VERSION == 1
    assert LEVELS == ("debug", "info", "warning", "error", "critical")
    assert STATUSES == ("started", "success", "failure", "retry", "heartbeat")
    assert BOT_ID_RE.pattern == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
    assert get_args(Level) == LEVELS
    assert get_args(Status) == STATUSES


def test_the_typed_dicts_have_the_contract_fields() -> None:
    assert set(Event.__annotations__) == set(FIELDS)
    assert Event.__required_keys__ == frozenset(REQUIRED_FIELDS)
    assert set(ErrorInfo.__annotations__) == set(ERROR_FIELDS)
    assert ErrorInfo.__required_keys__ == frozenset()


def test_the_json_schema_is_valid_draft_2020_12() -> None:
    schema = event_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_json_schema_states_the_same_rules() -> None:
    schema = event_json_schema()
    props = schema["properties"]
    assert list(props) == list(FIELDS)
    assert schema["required"] == list(REQUIRED_FIELDS)
    assert schema["additionalProperties"] is False
    assert props["timestamp"]["pattern"] == TIMESTAMP_RE.pattern
    assert props["bot_id"]["pattern"] == BOT_ID_RE.pattern
    assert props["event_id"]["maxLength"] == MAX_EVENT_ID_CHARS
    assert props["job_id"]["maxLength"] == MAX_JOB_ID_CHARS
    assert props["message"]["maxLength"] == MAX_MESSAGE_BYTES
    assert props["level"]["enum"] == list(LEVELS)
    assert props["status"]["enum"] == list(STATUSES)
    assert props["retry_count"]["maximum"] == MAX_RETRY_COUNT
    assert props["schema_version"]["const"] == SCHEMA_VERSION
    assert list(props["error"]["properties"]) == list(ERROR_FIELDS)
    assert props["error"]["additionalProperties"] is False


def _field_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    types = {}
    for name, spec in properties.items():
        types[prefix + name] = spec.get("type", "object")
        types.update(_field_types(spec.get("properties", {}), f"{prefix}{name}."))
        types.update(_field_types(spec.get("fields", {}), f"{prefix}{name}."))
    return types


def test_the_mappings_are_strict_and_map_every_field() -> None:
    mappings = event_index_mappings()
    assert mappings["dynamic"] == "strict"
    assert set(mappings) == {"dynamic", "properties"}
    assert list(mappings["properties"]) == list(FIELDS)
    types = _field_types(mappings["properties"])
    assert set(types.values()) <= CORE_FIELD_TYPES
    assert {name for name in types if name.startswith("error.")} == {
        f"error.{name}" for name in ERROR_FIELDS
    }


def test_the_mappings_give_each_field_its_type() -> None:
    props = event_index_mappings()["properties"]
    types = _field_types(props)
    for name in ("event_id", "bot_id", "job_id", "level", "status", "host", "env", "error.type"):
        assert types[name] == "keyword", name
    assert types["timestamp"] == "date"
    assert "strict_date_optional_time" in props["timestamp"]["format"].split("||")
    assert types["duration_ms"] == "double"
    assert types["retry_count"] == "long"
    assert types["schema_version"] == "integer"
    assert types["message"] == "text"
    assert types["message.keyword"] == "keyword"
    assert types["error.message"] == types["error.stack"] == "text"
    assert types["meta"] == "flat_object"


def test_keywords_that_can_be_long_are_capped_below_lucenes_term_limit() -> None:
    # Lucene refuses terms over 32766 bytes; ignore_above counts characters (<= 4 bytes each).
    props = event_index_mappings()["properties"]
    capped = [
        props["message"]["fields"]["keyword"],
        props["error"]["properties"]["type"],
        props["host"],
        props["env"],
    ]
    assert all(0 < spec["ignore_above"] * 4 <= 32766 for spec in capped)


def test_each_call_returns_a_fresh_copy() -> None:
    event_index_mappings()["dynamic"] = True
    event_json_schema()["required"].clear()
    assert event_index_mappings()["dynamic"] == "strict"
    assert event_json_schema()["required"] == list(REQUIRED_FIELDS)
