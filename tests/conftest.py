"""Shared pytest setup: markers by folder, and isolation helpers for the real stack.

Tests under ``tests/unit`` are marked ``unit`` and must not need Kafka or OpenSearch;
tests under ``tests/integration`` are marked ``integration`` and use the running stack
(`botwatch stack up`), each with its own uniquely named topics and indices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TopicFactory, create_topics, unique_name

from botwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts[0] == "unit":
            item.add_marker(pytest.mark.unit)
        elif parts[0] == "integration":
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.load()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The running stack; fails with the command to run when it is not up."""
    from botwatch.stack.kafka import kafka_answers_metadata
    from botwatch.stack.opensearch import cluster_health

    problems = []
    if not kafka_answers_metadata(settings.kafka_bootstrap, timeout_s=10):
        problems.append(f"Kafka at {settings.kafka_bootstrap} does not answer")
    if cluster_health(settings.opensearch_url) not in {"green", "yellow"}:
        problems.append(f"OpenSearch at {settings.opensearch_url} is not healthy")
    if problems:
        pytest.fail("; ".join(problems) + ": run `botwatch stack up` first", pytrace=False)
    return settings


@pytest.fixture
def make_topic(stack: Settings) -> Iterator[TopicFactory]:
    factory = TopicFactory(stack.kafka_bootstrap)
    yield factory
    factory.delete()


@pytest.fixture
def opensearch(stack: Settings) -> Any:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[stack.opensearch_url], timeout=30)
    yield client
    client.close()


@pytest.fixture
def make_index(opensearch: Any) -> Iterator[Any]:
    """``make_index(prefix="i") -> name``: a unique index name, deleted afterwards."""
    created: list[str] = []

    def make(prefix: str = "test") -> str:
        name = unique_name(f"botwatch-test-{prefix}")
        created.append(name)
        return name

    yield make
    for name in created:
        opensearch.indices.delete(index=name, ignore_unavailable=True)


class PrivateKafka:
    """A throw-away single-node broker of its own, for tests that stop the broker on purpose.

    It shares the downloaded jars of the main stack but has its own ports and data.
    """

    def __init__(self, settings: Settings, home: Path, port: int, controller_port: int) -> None:
        from botwatch.stack.kafka import KafkaNode
        from botwatch.stack.prereqs import Toolchain

        config = settings.stack_config()
        config = type(config)(
            home=home,
            cache_dir=config.dist_dir.parent,
            kafka_bootstrap=f"127.0.0.1:{port}",
            kafka_controller_port=controller_port,
            kafka_version=config.kafka_version,
            kafka_heap="512m",
            java_home=config.java_home,
            start_timeout_s=config.start_timeout_s,
        )
        self.bootstrap = config.kafka_bootstrap
        self.node = KafkaNode(config, Toolchain(config.java_home, config.maven_repo))

    def start(self) -> None:
        self.node.start()

    def stop(self, grace_s: float = 30.0) -> None:
        self.node.stop(grace_s)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        asyncio.run(create_topics(self.bootstrap, [name], partitions))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def private_kafka(stack: Settings, tmp_path: Path) -> Iterator[PrivateKafka]:
    """A started broker of the test's own (see PrivateKafka); stopped afterwards."""
    broker = PrivateKafka(stack, tmp_path / "kafka-home", _free_port(), _free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(grace_s=10)


@pytest.fixture
def index_prefix(opensearch: Any) -> Iterator[str]:
    """A unique index prefix (BOTWATCH_INDEX_PREFIX); its indices and templates go afterwards."""
    name = unique_name("botwatch-test")
    yield name
    for row in opensearch.cat.indices(index=f"{name}-*", format="json", h="index"):
        opensearch.indices.delete(index=row["index"], ignore_unavailable=True)
    found = opensearch.indices.get_index_template(name=f"{name}*", ignore=404)
    for template in found.get("index_templates", []):
        opensearch.indices.delete_index_template(name=template["name"], ignore=404)
