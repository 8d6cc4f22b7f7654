"""Settings of the OpenSearch sink (`botwatch worker`, `botwatch setup`, `botwatch retention`).

There is no linger setting: the sink writes whole worker batches (already bounded by
``BOTWATCH_BATCH_MAX`` and ``BOTWATCH_BATCH_WITHIN_S``) and must return only once they are
written, so waiting inside the sink would only delay the offset commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from schemas.env import SettingsError, setting

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "pwd",  # ODBC connection strings: Pwd=...
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "set-cookie",
    "private_key",
    "access_key",
    "client_secret",
    "credential",
)


@dataclass(frozen=True)
class SinkConfig:
    opensearch_url: str = setting(
        "http://localhost:9200", "BOTWATCH_OPENSEARCH_URL", "OpenSearch base URL."
    )
    index_prefix: str = setting(
        "botwatch",
        "BOTWATCH_INDEX_PREFIX",
        "Prefix of every index and template (<prefix>-events-YYYY.MM.DD, <prefix>-stats-YYYY.MM, "
        "...).",
    )
    bulk_max_docs: int = setting(
        5000, "BOTWATCH_BULK_MAX_DOCS", "Most documents in one _bulk request."
    )
    bulk_max_bytes: int = setting(
        5 * 1024 * 1024, "BOTWATCH_BULK_MAX_BYTES", "Largest _bulk request body, in bytes."
    )
    bulk_concurrency: int = setting(
        2,
        "BOTWATCH_BULK_CONCURRENCY",
        "_bulk requests one write is split into and sent at once (three batches' writes are "
        "in flight already; two requests each keep a second node core busy).",
    )
    index_refresh_interval: str = setting(
        "500ms",
        "BOTWATCH_INDEX_REFRESH_INTERVAL",
        "How often OpenSearch makes new documents searchable (index.refresh_interval of the "
        "templates, so of indices made after a change: 500ms, 1s, 30s...; -1 turns the "
        "scheduled refresh off). Longer: fewer, larger segments; shorter: sooner searchable.",
    )
    request_timeout_s: float = setting(
        30.0, "BOTWATCH_OPENSEARCH_TIMEOUT_S", "Timeout of one request to OpenSearch."
    )
    bulk_shard_wait_s: float = setting(
        10.0,
        "BOTWATCH_BULK_SHARD_WAIT_S",
        "How long OpenSearch may wait for an index's primary shard (a red index, one being "
        "created) before answering its documents 503; kept under half of "
        "BOTWATCH_OPENSEARCH_TIMEOUT_S, so a red index is named, not taken for a node down.",
    )
    retry_base_s: float = setting(
        0.1, "BOTWATCH_SINK_RETRY_BASE_S", "First retry delay after a failed write (doubles)."
    )
    retry_cap_s: float = setting(
        10.0, "BOTWATCH_SINK_RETRY_CAP_S", "Longest delay between retries of a failed write."
    )
    breaker_failures: int = setting(
        3,
        "BOTWATCH_SINK_BREAKER_FAILURES",
        "Consecutive failed requests after which the sink's circuit opens, or rounds of "
        "documents answered 429/5xx after which the sink reports them; /ready says 503.",
    )
    breaker_open_s: float = setting(
        5.0,
        "BOTWATCH_SINK_BREAKER_OPEN_S",
        "How long an open circuit waits before one probe request.",
    )
    redact_keys: tuple[str, ...] = setting(
        DEFAULT_REDACT_KEYS,
        "BOTWATCH_REDACT_KEYS",
        "Comma-separated key names whose values are redacted before indexing "
        "(matched case-insensitively, also as part of a longer key). The list replaces the "
        "default one: to add a key, give the defaults too.",
    )
    retention_sweep_s: float = setting(
        86400.0,
        "BOTWATCH_RETENTION_SWEEP_S",
        "How often a running worker deletes expired indices when ISM is absent; where it is "
        "present, the worker installs the ISM policies at start instead (0: neither).",
    )
    retention_events_days: int = setting(
        90, "BOTWATCH_RETENTION_EVENTS_DAYS", "Days events below error level are kept."
    )
    retention_errors_days: int = setting(
        365, "BOTWATCH_RETENTION_ERRORS_DAYS", "Days error and critical events are kept."
    )
    retention_stats_days: int = setting(
        400, "BOTWATCH_RETENTION_STATS_DAYS", "Days per-bot window records are kept."
    )
    retention_dlq_days: int = setting(
        30, "BOTWATCH_RETENTION_DLQ_DAYS", "Days dead-letter documents are kept."
    )
    retention_alerts_days: int = setting(
        400, "BOTWATCH_RETENTION_ALERTS_DAYS", "Days alert documents are kept."
    )

    def __post_init__(self) -> None:
        # OpenSearch reads time values lower-cased and trimmed: so does this check.
        value = self.index_refresh_interval.strip().lower()
        match = _REFRESH_INTERVAL.fullmatch(value)
        if match is None or (match.group(1) is not None and int(match.group(1)) == 0):
            raise SettingsError(
                f"BOTWATCH_INDEX_REFRESH_INTERVAL={self.index_refresh_interval!r} is not a "
                "refresh interval: give a whole number of at least 1 with a unit of ms, s, m, "
                "h or d (500ms, 1s, 30s), or -1 to turn the scheduled refresh off."
            )
        object.__setattr__(self, "index_refresh_interval", value)
        if _INDEX_PREFIX.fullmatch(self.index_prefix) is None:
            # Found by OpenSearch at the first template, after setup had made the topics,
            # as a traceback.
            raise SettingsError(
                f"BOTWATCH_INDEX_PREFIX={self.index_prefix!r} cannot begin an index name: give "
                "lower-case letters, digits and . _ - + only, beginning with a letter or a "
                "digit (OpenSearch refuses upper case and most punctuation in index names)."
            )
        try:
            parts = urlsplit(self.opensearch_url)
            parts.port  # noqa: B018 - it raises for a port that is no number
        except ValueError as exc:  # "Invalid IPv6 URL", a port that is no number
            raise SettingsError(
                f"BOTWATCH_OPENSEARCH_URL is not a URL ({exc}): give "
                "http(s)://HOST:PORT, as http://localhost:9200."
            ) from None
        if parts.username is not None and parts.password is None:
            # opensearch-py failed on it with a TypeError deep in its host parsing.
            raise SettingsError(
                f"BOTWATCH_OPENSEARCH_URL={display_url(self.opensearch_url)} names a user "
                "without a password: OpenSearch takes basic authentication, give "
                "http(s)://USER:PASSWORD@HOST:PORT (a password with : @ / or % written "
                "%-encoded)."
            )


# What index.refresh_interval may be here: -1 (off), or at least a millisecond (a shorter
# one, 0s or 1nanos, would also stop the scheduled refresh, silently), with at most 18
# digits (OpenSearch keeps it in a Java long).
_REFRESH_INTERVAL: Final = re.compile(r"-1|([0-9]{1,18})(?:ms|s|m|h|d)")
# Room left for "-events-errors-YYYY.MM.DD" within OpenSearch's 255 bytes.
_INDEX_PREFIX: Final = re.compile(r"[a-z0-9][a-z0-9._+-]{0,199}")


def display_url(url: str) -> str:
    """``url`` for messages: no password (a user name alone may be a token: hidden too), no
    query (``?api_key=...``) and no fragment."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    shown = (f"{user}:***" if colon else "***") + at if at else ""
    return urlunsplit(parts._replace(netloc=shown + host, query="", fragment=""))
