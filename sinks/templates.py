"""Composable index templates, one per index family, built from the contract's mappings.

``template_bodies`` is pure (the sink and the tests read it); ``install_templates`` PUTs
them, which is idempotent: a second run replaces each template with the same body.
Templates apply when an index is created, so a changed template reaches the next day's
index, never an existing one.
"""

from __future__ import annotations

from typing import Any, Final

from schemas import event_index_mappings
from sinks.config import SinkConfig
from sinks.indices import Family, family_pattern

TEMPLATE_PRIORITY: Final = 100

# Single node, local stack: no replica to allocate (the index stays green); one shard is
# plenty for a day of bot events. The refresh interval is a setting (SinkConfig).
INDEX_SETTINGS: Final[dict[str, Any]] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,
}

_DATE: Final[dict[str, Any]] = {
    "type": "date",
    "format": "strict_date_optional_time||epoch_millis",
}
_LONG: Final[dict[str, Any]] = {"type": "long"}
_DOUBLE: Final[dict[str, Any]] = {"type": "double"}
_KEYWORD: Final[dict[str, Any]] = {"type": "keyword", "ignore_above": 1024}
_TEXT_KEYWORD: Final[dict[str, Any]] = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
}


def stats_mappings() -> dict[str, Any]:
    """The window record. ``dynamic: false``: a field added by a newer worker is kept in
    ``_source`` instead of failing every window (the record is also on the stats topic)."""
    levels = ("debug", "info", "warning", "error", "critical")
    summary = ("sum", "min", "max", "mean", "p50", "p95", "p99")
    return {
        "dynamic": False,
        "properties": {
            "bot_id": {"type": "keyword"},
            "window_start": _DATE,
            "window_end": _DATE,
            "window_size_s": _LONG,
            **{name: _LONG for name in ("count", "errors", "successes", "failures", "retries")},
            "error_rate": _DOUBLE,
            "failure_rate": _DOUBLE,
            "levels": {"properties": {level: _LONG for level in levels}},
            "duration_ms": {"properties": {"count": _LONG, **{name: _DOUBLE for name in summary}}},
            "late_events_excluded": _LONG,
            "schema_version": {"type": "integer"},
        },
    }


def dlq_mappings() -> dict[str, Any]:
    """A dead letter (see ``sinks.documents.dlq_document``): the original record as text in
    ``value``, and when it was a JSON object a redacted copy in ``event`` (``flat_object``:
    a malformed record must not be able to break the index's mappings)."""
    return {
        "dynamic": "strict",
        "properties": {
            "stage": {"type": "keyword"},
            "reason": _TEXT_KEYWORD,
            # The reason without its particulars: what a chart of dead letters groups by.
            "reason_class": _KEYWORD,
            "exception": _TEXT_KEYWORD,
            "original_topic": {"type": "keyword"},
            "original_partition": {"type": "integer"},
            "original_offset": _LONG,
            "original_timestamp": _DATE,
            "first_failed_at": _DATE,
            "replay_count": {"type": "integer"},
            "bot_id": _KEYWORD,
            "key": _KEYWORD,
            "value": {"type": "text"},
            "value_encoding": {"type": "keyword"},
            "event": {"type": "flat_object"},
            "headers": {"type": "flat_object"},
        },
    }


def alerts_mappings() -> dict[str, Any]:
    """The alert record of the design brief; ``dynamic: false`` like stats."""
    return {
        "dynamic": False,
        "properties": {
            "rule": {"type": "keyword"},
            "bot_id": {"type": "keyword"},
            "severity": {"type": "keyword"},
            "state": {"type": "keyword"},
            "value": _DOUBLE,
            "threshold": _DOUBLE,
            "window": {"type": "keyword"},
            "starts_at": _DATE,
            "ends_at": _DATE,
            "fingerprint": {"type": "keyword"},
            "labels": {"type": "flat_object"},
            "annotations": {"type": "flat_object"},
        },
    }


def template_name(prefix: str, family: Family) -> str:
    return f"{prefix}-{family}"


def template_bodies(config: SinkConfig) -> dict[str, dict[str, Any]]:
    """Template name -> ``_index_template`` body. The events template also covers the
    ``events-errors`` family: same mappings, only the retention differs."""
    prefix = config.index_prefix
    families: dict[Family, dict[str, Any]] = {
        "events": event_index_mappings(),
        "stats": stats_mappings(),
        "dlq": dlq_mappings(),
        "alerts": alerts_mappings(),
    }
    settings = {**INDEX_SETTINGS, "refresh_interval": config.index_refresh_interval}
    return {
        template_name(prefix, family): {
            "index_patterns": [family_pattern(prefix, family)],
            "priority": TEMPLATE_PRIORITY,
            "template": {"settings": {"index": dict(settings)}, "mappings": mappings},
            "_meta": {"managed_by": "botwatch", "family": family},
        }
        for family, mappings in families.items()
    }


def mapping_updates(config: SinkConfig) -> dict[Family, tuple[str, dict[str, Any]]]:
    """Template family -> (its index pattern, ``_mapping`` body): each template's fields, put
    on the indices it made before. A template applies to indices created after it; a field
    added since (the dead letters' ``bot_id``) would make a strict index of today refuse
    every document holding it until tomorrow's index."""
    return {
        body["_meta"]["family"]: (
            body["index_patterns"][0],
            {"properties": body["template"]["mappings"]["properties"]},
        )
        for body in template_bodies(config).values()
    }


# Open indices only (the default takes closed ones too); none matching is no error.
MAPPING_UPDATE_PARAMS: Final = "allow_no_indices=true&ignore_unavailable=true&expand_wildcards=open"


def install_templates(client: Any, config: SinkConfig) -> list[str]:
    """PUT every template with a synchronous ``opensearchpy.OpenSearch``; returns the names."""
    bodies = template_bodies(config)
    for name, body in bodies.items():
        client.indices.put_index_template(name=name, body=body)
    return list(bodies)


def update_mappings(client: Any, config: SinkConfig) -> list[str]:
    """Put the templates' fields on the indices they made before (``mapping_updates``), with
    a synchronous ``opensearchpy.OpenSearch``; returns what could not be done, one line
    per family pattern (an index that is read-only or has other field types refuses)."""
    from opensearchpy.exceptions import TransportError

    problems = []
    for pattern, mapping in mapping_updates(config).values():
        try:
            client.indices.put_mapping(
                index=pattern,
                body=mapping,
                allow_no_indices=True,
                ignore_unavailable=True,
                expand_wildcards="open",
            )
        except TransportError as exc:
            problems.append(f"{pattern}: {exc}")
    return problems
