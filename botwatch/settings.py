"""botwatch's one settings object: defaults, overridden by environment, overridden by flags.

Every component's settings are nested here, so `botwatch --help` lists them all and a
flag overlays the environment that all components read (see ``schemas.env``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from botwatch.stack.config import StackConfig
from producers.config import ProducerConfig
from schemas.env import SettingsError, describe, from_env, nested, setting
from sinks.config import SinkConfig
from sinks.receivers.config import ReceiverConfig
from streams.config import StreamsConfig

__all__ = ["Settings", "SettingsError", "describe_settings"]


def default_home() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "botwatch"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = setting(
        "localhost:9092", "BOTWATCH_KAFKA_BOOTSTRAP", "Kafka bootstrap servers (host:port,...)."
    )
    opensearch_url: str = setting(
        "http://localhost:9200", "BOTWATCH_OPENSEARCH_URL", "OpenSearch base URL."
    )
    home: Path = setting(
        default_home,
        "BOTWATCH_HOME",
        "Cache and data directory of the local stack (downloads, data, logs, pid files).",
    )
    cache_dir: str = setting(
        "",
        "BOTWATCH_CACHE_DIR",
        "Where Kafka and OpenSearch downloads go (default: inside BOTWATCH_HOME); "
        "several stacks can share one.",
    )
    kafka_version: str = setting(
        "4.1.1", "BOTWATCH_KAFKA_VERSION", "Apache Kafka version the local stack fetches."
    )
    kafka_controller_port: int = setting(
        9093, "BOTWATCH_KAFKA_CONTROLLER_PORT", "KRaft controller port of the local broker."
    )
    kafka_heap: str = setting("1g", "BOTWATCH_KAFKA_HEAP", "JVM heap of the local broker.")
    opensearch_version: str = setting(
        "2.19.6", "BOTWATCH_OPENSEARCH_VERSION", "OpenSearch version the local stack fetches."
    )
    opensearch_transport_port: int = setting(
        9300, "BOTWATCH_OPENSEARCH_TRANSPORT_PORT", "Transport port of the local OpenSearch node."
    )
    opensearch_heap: str = setting(
        "1g", "BOTWATCH_OPENSEARCH_HEAP", "JVM heap of the local OpenSearch node."
    )
    opensearch_user: str = setting(
        "botwatch",
        "BOTWATCH_OPENSEARCH_USER",
        "Non-root user OpenSearch runs as when botwatch runs as root (created if missing).",
    )
    java_home: str = setting(
        "", "BOTWATCH_JAVA_HOME", "JDK (17+) for Kafka and OpenSearch; default JAVA_HOME or PATH."
    )
    stack_timeout_s: float = setting(
        180.0, "BOTWATCH_STACK_TIMEOUT", "Seconds to wait for a stack node to become ready."
    )
    producer: ProducerConfig = nested(ProducerConfig)

    streams: StreamsConfig = nested(StreamsConfig)
    sink: SinkConfig = nested(SinkConfig)
    receivers: ReceiverConfig = nested(ReceiverConfig)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, flags: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Settings from ``environ`` (default: the process environment) with ``flags`` on top.

        ``flags`` maps environment variable names to values; None means "flag not given".
        """
        merged = dict(os.environ if environ is None else environ)
        merged.update({env: value for env, value in (flags or {}).items() if value is not None})
        return from_env(cls, merged)

    def stack_config(self) -> StackConfig:
        return StackConfig(
            home=self.home,
            kafka_bootstrap=self.kafka_bootstrap,
            kafka_controller_port=self.kafka_controller_port,
            kafka_version=self.kafka_version,
            kafka_heap=self.kafka_heap,
            opensearch_url=self.opensearch_url,
            opensearch_transport_port=self.opensearch_transport_port,
            opensearch_version=self.opensearch_version,
            opensearch_heap=self.opensearch_heap,
            opensearch_user=self.opensearch_user,
            java_home=self.java_home or None,
            start_timeout_s=self.stack_timeout_s,
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
        )


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, for `botwatch --help`."""
    return describe(Settings)
