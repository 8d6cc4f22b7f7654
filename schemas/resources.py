"""The contract as data for other tools: the JSON Schema and the OpenSearch mappings of events.

Both are checked-in JSON files beside this module, so non-Python producers and index
templates read the very files the tests check. Each call returns a fresh dict the caller
may change.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import orjson

EVENT_SCHEMA_FILE = "event.schema.json"
EVENT_MAPPINGS_FILE = "event.mappings.json"


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an event, for producers outside Python."""
    schema: dict[str, Any] = orjson.loads(_read(EVENT_SCHEMA_FILE))
    return schema


def event_index_mappings() -> dict[str, Any]:
    """OpenSearch mappings of an event index: ``dynamic: strict``, ``meta`` as ``flat_object``."""
    mappings: dict[str, Any] = orjson.loads(_read(EVENT_MAPPINGS_FILE))
    return mappings


@cache
def _read(name: str) -> bytes:
    return files(__package__ or "schemas").joinpath(name).read_bytes()
