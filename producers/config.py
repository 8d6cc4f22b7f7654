"""Settings of the producer SDK, read from BOTWATCH_* variables (see ``schemas.env``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from schemas.env import SettingsError, setting

__all__ = ["COMPRESSIONS", "ProducerConfig", "default_spool_dir"]

COMPRESSIONS = ("none", "gzip", "lz4", "zstd", "snappy")


def default_spool_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "botwatch" / "spool"


@dataclass(frozen=True)
class ProducerConfig:
    """How bots publish events: where to, how to batch, and how much to hold when Kafka is away."""

    bootstrap: str = setting(
        "localhost:9092", "BOTWATCH_KAFKA_BOOTSTRAP", "Kafka bootstrap servers (host:port,...)."
    )
    topic: str = setting("botwatch.events", "BOTWATCH_EVENTS_TOPIC", "Topic of raw bot events.")
    env: str = setting(
        "", "BOTWATCH_ENV", "Deployment environment stamped on every event (e.g. prod)."
    )
    spool_dir: Path = setting(
        default_spool_dir,
        "BOTWATCH_SPOOL_DIR",
        "Where bots keep events on disk while Kafka is unreachable (one subfolder per bot).",
    )
    spool_max_bytes: int = setting(
        128 * 1024 * 1024,
        "BOTWATCH_SPOOL_MAX_BYTES",
        "Disk a bot's spool may use; when full, new events are rejected and counted.",
    )
    emit_block_ms: float = setting(
        50.0,
        "BOTWATCH_EMIT_BLOCK_MS",
        "Longest a logging call waits for room in the in-memory queue before dropping (counted).",
    )
    queue_max_events: int = setting(
        20_000, "BOTWATCH_QUEUE_MAX_EVENTS", "In-memory queue between a bot and its sender."
    )
    linger_ms: int = setting(
        5, "BOTWATCH_LINGER_MS", "How long the producer waits to fill a batch."
    )
    batch_bytes: int = setting(
        256 * 1024, "BOTWATCH_BATCH_BYTES", "Largest batch per partition, in bytes."
    )
    compression: str = setting(
        "lz4", "BOTWATCH_COMPRESSION", "Batch compression: none, gzip, lz4, zstd or snappy."
    )
    delivery_timeout_ms: int = setting(
        10_000,
        "BOTWATCH_DELIVERY_TIMEOUT_MS",
        "After this long without an acknowledgement, new events go to the spool.",
    )
    flush_timeout_s: float = setting(
        10.0, "BOTWATCH_FLUSH_TIMEOUT", "How long close() and exit wait for pending events."
    )

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise SettingsError(
                f"BOTWATCH_COMPRESSION={self.compression!r}: use one of {', '.join(COMPRESSIONS)}"
            )
