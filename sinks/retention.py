"""Retention: whole dated indices are deleted once past their family's age.

Where the ISM plugin (``opensearch-index-management``) is installed, one policy per family
deletes its indices (``install_ism_policies``); elsewhere botwatch's own sweeper does it
(``run_retention``, from `botwatch retention run`). The sweeper goes by the day in the index
name, the newest day of its documents (a monthly index: the month's last day); ISM goes by
the index's creation time, which for a daily index is the same day unless documents arrive
late, and which a monthly index's policy waits 31 days more past.

An index is expired when its day is more than N days before today (UTC): with 90 days, the
index of 1 January 2026 is kept through 1 April (90 days later) and goes on 2 April. Only
names of the form ``<prefix>-<family>-YYYY.MM.DD`` or ``-YYYY.MM`` are ever considered;
anything else is left alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

from sinks.config import SinkConfig
from sinks.indices import FAMILIES, MONTHLY, Family, family_pattern, parse_index

ISM_PLUGIN: Final = "opensearch-index-management"
ISM_PRIORITY: Final = 100


def retention_days(config: SinkConfig) -> dict[Family, int]:
    return {
        "events": config.retention_events_days,
        "events-errors": config.retention_errors_days,
        "stats": config.retention_stats_days,
        "dlq": config.retention_dlq_days,
        "alerts": config.retention_alerts_days,
    }


@dataclass(frozen=True)
class Expired:
    index: str
    family: Family
    day: date
    age_days: int
    keep_days: int


def expired_indices(index_names: Iterable[str], today: date, config: SinkConfig) -> list[Expired]:
    """The botwatch indices of ``config.index_prefix`` whose newest day is past its family's
    retention, oldest first."""
    keep = retention_days(config)
    found: list[Expired] = []
    for name in index_names:
        parsed = parse_index(config.index_prefix, name)
        if parsed is None:
            continue
        family, day = parsed
        age = (today - day).days
        if age > keep[family]:
            found.append(Expired(name, family, day, age, keep[family]))
    return sorted(found, key=lambda e: (e.day, e.index))


def plan_retention(index_names: Iterable[str], today: date, config: SinkConfig) -> list[str]:
    """The names of the indices to delete (see ``expired_indices``)."""
    return [e.index for e in expired_indices(index_names, today, config)]


def run_retention(
    client: Any, config: SinkConfig, dry_run: bool, today: date | None = None
) -> list[Expired]:
    """Delete (unless ``dry_run``) the expired indices; ``client``: ``opensearchpy.OpenSearch``."""
    today = today or datetime.now(UTC).date()
    rows = client.cat.indices(
        index=f"{config.index_prefix}-*", format="json", h="index", expand_wildcards="all"
    )
    expired = expired_indices((row["index"] for row in rows), today, config)
    if not dry_run:
        for e in expired:
            client.indices.delete(index=e.index, ignore_unavailable=True)
    return expired


# -- ISM --------------------------------------------------------------------------------


def ism_policy_id(prefix: str, family: Family) -> str:
    return f"{prefix}-{family}-retention"


def ism_policies(config: SinkConfig) -> dict[str, dict[str, Any]]:
    """Policy id -> body. ``events-*`` also matches ``events-errors-*``: the errors policy
    has the higher ``ism_template`` priority, so error indices get the longer retention."""
    prefix = config.index_prefix
    keep = retention_days(config)
    policies: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        priority = ISM_PRIORITY + (1 if family == "events-errors" else 0)
        # ISM counts from the index's creation: a monthly one is made in its first days and
        # written to for a month more.
        age = keep[family] + (31 if family in MONTHLY else 0)
        policy: dict[str, Any] = {
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [
                        {
                            "state_name": "delete",
                            "conditions": {"min_index_age": f"{age}d"},
                        }
                    ],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [
                {"index_patterns": [family_pattern(prefix, family)], "priority": priority}
            ],
        }
        # The digest names this exact policy: the node returns it with fields of its own
        # added, so an unchanged policy is told by its description (``install_ism_policies``).
        digest = hashlib.sha256(orjson.dumps(policy, option=orjson.OPT_SORT_KEYS)).hexdigest()
        policy["description"] = (
            f"botwatch: delete {prefix} {family} indices after {age} days [{digest[:12]}]"
        )
        policies[ism_policy_id(prefix, family)] = {"policy": policy}
    return policies


def has_ism(client: Any) -> bool:
    rows = client.cat.plugins(format="json")
    return any(row.get("component") == ISM_PLUGIN for row in rows)


# Tries of one policy's read-then-write when another writer updates it in between (two
# workers starting at once).
_POLICY_TRIES: Final = 3


def install_ism_policies(client: Any, config: SinkConfig) -> dict[str, str]:
    """Create or update each policy; policy id -> ``created``, ``updated`` or ``unchanged``.

    A policy whose description (with its digest) is already the node's is left alone: every
    worker start installs them, and each update would make a new policy version. An update
    must name the version it replaces; one written by another since it was read (two workers
    starting at once) is read again.
    """
    from opensearchpy.exceptions import ConflictError, NotFoundError

    outcomes: dict[str, str] = {}
    for policy_id, policy in ism_policies(config).items():
        path = f"/_plugins/_ism/policies/{policy_id}"
        for tries_left in reversed(range(_POLICY_TRIES)):
            params: dict[str, Any] = {}
            try:
                current = client.transport.perform_request("GET", path)
            except NotFoundError:
                outcome = "created"
            else:
                described = (current.get("policy") or {}).get("description")
                if described == policy["policy"]["description"]:
                    outcome = "unchanged"
                    break
                outcome = "updated"
                params = {
                    "if_seq_no": current["_seq_no"],
                    "if_primary_term": current["_primary_term"],
                }
            try:
                client.transport.perform_request("PUT", path, params=params, body=policy)
                break
            except ConflictError:  # written by another since the GET: read it again
                if not tries_left:
                    raise
        outcomes[policy_id] = outcome
    return outcomes
