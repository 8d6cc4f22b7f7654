"""Configuration of the local single-node stack (Kafka KRaft + OpenSearch on loopback)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """``localhost:9092`` -> (``localhost``, 9092); the first of a comma-separated list."""
    first = address.split(",", maxsplit=1)[0].strip()
    if "://" in first:
        parts = urlsplit(first)
        return parts.hostname or "localhost", parts.port or default_port
    host, _, port = first.rpartition(":")
    if not host:
        return first, default_port
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class StackConfig:
    home: Path
    kafka_bootstrap: str = "localhost:9092"
    kafka_controller_port: int = 9093
    kafka_version: str = "4.1.1"
    kafka_heap: str = "1g"
    opensearch_url: str = "http://localhost:9200"
    opensearch_transport_port: int = 9300
    opensearch_version: str = "2.19.6"
    opensearch_heap: str = "1g"
    opensearch_user: str = "botwatch"
    java_home: str | None = None
    start_timeout_s: float = 180.0
    # Where downloads live; None means inside ``home``. Lets a second, throw-away stack
    # (as tests start to stop a broker on purpose) share the fetched distributions.
    cache_dir: Path | None = None

    @property
    def kafka_port(self) -> int:
        return split_host_port(self.kafka_bootstrap, 9092)[1]

    @property
    def opensearch_port(self) -> int:
        return split_host_port(self.opensearch_url, 9200)[1]

    @property
    def dist_dir(self) -> Path:
        """Downloads and unpacked distributions: safe to delete, fetched again on `up`."""
        return (self.cache_dir or self.home) / "dist"

    @property
    def maven_repo(self) -> Path:
        return (self.cache_dir or self.home) / "m2"

    @property
    def data_dir(self) -> Path:
        """Broker logs and index data: kept across `down` and `up`."""
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"
