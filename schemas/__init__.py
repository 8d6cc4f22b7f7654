"""The event contract: models, validation, JSON Schema and index mappings.

Imports no other botwatch package; all of them import it.
"""

from schemas.errors import EventDecodeError, EventError, EventValidationError
from schemas.event import (
    BOT_ID_RE,
    ERROR_FIELDS,
    ERROR_LEVELS,
    FIELDS,
    LEVELS,
    MAX_EVENT_ID_CHARS,
    MAX_JOB_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_META_BYTES,
    MAX_RETRY_COUNT,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    STATUSES,
    TIMESTAMP_RE,
    ErrorInfo,
    Event,
    Level,
    Status,
    decode_event,
    timestamp_ms,
    validate_event,
)
from schemas.resources import event_index_mappings, event_json_schema

__all__ = [
    "BOT_ID_RE",
    "ERROR_FIELDS",
    "ERROR_LEVELS",
    "FIELDS",
    "LEVELS",
    "MAX_EVENT_ID_CHARS",
    "MAX_JOB_ID_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_META_BYTES",
    "MAX_RETRY_COUNT",
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "STATUSES",
    "TIMESTAMP_RE",
    "ErrorInfo",
    "Event",
    "EventDecodeError",
    "EventError",
    "EventValidationError",
    "Level",
    "Status",
    "decode_event",
    "event_index_mappings",
    "event_json_schema",
    "timestamp_ms",
    "validate_event",
]
