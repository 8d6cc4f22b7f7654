"""The worker's Kafka probe: down on the first unanswered request, up on the next answer."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import pytest
from aiokafka.errors import KafkaConnectionError, LeaderNotAvailableError, NodeNotReadyError
from aiokafka.protocol.metadata import MetadataResponse_v0, MetadataResponse_v5

from streams.broker_probe import BrokerProbe, _AioKafkaMetadata, partition_counts


class FakeClient:
    """Answers like aiokafka's client; ``mode`` is "ok", "refused" or "hang"."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.closed = False

    async def bootstrap(self) -> None:
        self.cluster.bootstraps += 1
        await self._answer()

    async def partition_counts(self, topics: list[str]) -> dict[str, int]:
        self.cluster.requests += 1
        self.cluster.topics.append(topics)
        await self._answer()
        count = self.cluster.partitions
        found = [t for t in topics if t not in self.cluster.deleted]
        return {} if count is None else {t: count for t in found}

    async def close(self) -> None:
        self.closed = True

    async def _answer(self) -> None:
        if self.cluster.mode == "refused":
            raise ConnectionRefusedError(111, "Connect call failed")
        if self.cluster.mode == "hang":
            await asyncio.sleep(3600)


class FakeCluster:
    def __init__(self) -> None:
        self.mode = "ok"
        self.bootstraps = 0
        self.requests = 0
        self.topics: list[list[str]] = []
        self.partitions: int | None = 6
        self.deleted: set[str] = set()
        self.clients: list[FakeClient] = []

    def client(self) -> FakeClient:
        client = FakeClient(self)
        self.clients.append(client)
        return client


def probe(cluster: FakeCluster, now: list[float]) -> BrokerProbe:
    return BrokerProbe(
        "kafka-1:9092",
        "bots.events",
        timeout_s=0.05,
        client_factory=cluster.client,
        clock=lambda: now[0],
    )


async def test_the_outputs_are_asked_about_in_the_same_request_and_the_missing_ones_named() -> None:
    cluster, now = FakeCluster(), [1_795_428_000.0]
    p = BrokerProbe(
        "kafka-1:9092",
        "bots.events",
        outputs=["bots.dlq", "bots.stats"],
        client_factory=cluster.client,
        clock=lambda: now[0],
    )
    assert await p.check()
    assert cluster.topics == [["bots.events", "bots.dlq", "bots.stats"]]
    assert p.missing == []
    cluster.deleted = {"bots.dlq"}
    assert await p.check()
    assert (p.missing, p.topic_found, p.partitions) == (["bots.dlq"], True, 6)
    cluster.deleted = set()
    assert await p.check()
    assert p.missing == []


async def test_down_while_refused_then_up_again_with_the_time_it_went_down() -> None:
    cluster, now = FakeCluster(), [1_795_428_000.0]
    p = probe(cluster, now)
    assert await p.check()
    assert p.health() == (True, "Kafka at kafka-1:9092 answers")
    assert cluster.topics == [["bots.events"]]  # not every topic of the cluster
    assert p.partitions == 6
    cluster.partitions = 12  # partitions added to the topic
    assert await p.check()
    assert p.partitions == 12
    cluster.partitions = None  # the topic deleted
    assert await p.check()  # Kafka answers
    assert (p.partitions, p.topic_found) == (None, False)
    cluster.mode = "refused"
    assert not await p.check()
    now[0] += 30
    assert not await p.check()  # still down: the time it went down is kept
    ok, reason = p.health()
    assert not ok
    assert reason.startswith("Kafka at kafka-1:9092 unreachable since 2026-11-23T10:00:00+00:00")
    assert "ConnectionRefusedError" in reason and "read once it answers" in reason
    cluster.mode = "ok"
    assert await p.check()
    assert p.health()[0] and p.down_since is None
    assert cluster.bootstraps == 1  # the client survives an outage: it reconnects by itself


async def test_a_request_without_answer_counts_as_down() -> None:
    cluster, now = FakeCluster(), [0.0]
    p = probe(cluster, now)
    cluster.mode = "hang"
    assert not await p.check()
    assert "no answer within 0.05 s" in p.health()[1]
    # The bootstrap never finished: that client is closed, the next check makes another.
    assert cluster.clients[0].closed
    cluster.mode = "ok"
    assert await p.check()
    assert len(cluster.clients) == 2


async def test_the_running_probe_checks_every_interval_and_stops() -> None:
    cluster, now = FakeCluster(), [0.0]
    p = probe(cluster, now)
    p.interval_s = 0.01
    await p.start()
    for _ in range(500):
        if cluster.requests >= 3:
            break
        await asyncio.sleep(0.01)
    assert cluster.requests >= 3
    await p.stop()
    assert cluster.clients[0].closed
    requests = cluster.requests
    await asyncio.sleep(0.05)
    assert cluster.requests == requests


class Broker(NamedTuple):
    nodeId: int  # aiokafka's name


class FakeAioKafkaClient:
    """aiokafka's client as the metadata adapter uses it: known brokers, and ``send``."""

    def __init__(self, answering: set[int], brokers: list[int], hanging: int | None = None) -> None:
        self.answering = answering
        self.hanging = hanging
        self._brokers = brokers
        self.sent: list[tuple[int, Any]] = []
        self.cluster = self

    def brokers(self) -> list[Broker]:
        return [Broker(node) for node in self._brokers]

    async def send(self, node: int, request: Any) -> str:
        self.sent.append((node, request))
        if node == self.hanging:
            await asyncio.sleep(3600)
        if node not in self.answering:
            raise NodeNotReadyError(f"node {node} not ready")
        return f"answer of {node}"


async def test_metadata_of_the_topic_from_the_first_broker_that_answers() -> None:
    client = FakeAioKafkaClient(answering={3}, brokers=[1, 2, 3], hanging=1)
    adapter = _AioKafkaMetadata(client)  # type: ignore[arg-type]
    # Broker 1 never answers and 2 refuses: 3's answer counts, without waiting for 1.
    async with asyncio.timeout(1):
        assert await adapter._first_answer(["bots.events"], str) == "answer of 3"
    assert sorted(node for node, _ in client.sent) == [1, 2, 3]
    for _, request in client.sent:  # aiokafka keeps the request's fields private
        assert request._topics == ["bots.events"]
        assert request._allow_auto_topic_creation is False  # asking creates nothing


async def test_metadata_fails_with_the_last_error_when_no_broker_answers() -> None:
    adapter = _AioKafkaMetadata(FakeAioKafkaClient(set(), [1, 2]))  # type: ignore[arg-type]
    with pytest.raises(NodeNotReadyError, match="node 2"):
        await adapter._first_answer(["t"], str)
    no_brokers = _AioKafkaMetadata(FakeAioKafkaClient(set(), []))  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError, match="no broker known"):
        await no_brokers._first_answer(["t"], str)


def _answer(topics: list[tuple[int, str, int]], brokers: int = 1) -> MetadataResponse_v5:
    """A metadata answer as Kafka sends it: ``(error code, topic, partitions)`` each."""
    return MetadataResponse_v5(
        0,
        [(node, "127.0.0.1", 9092 + node, None) for node in range(brokers)],
        "cluster",
        0,
        [
            (error, name, False, [(0, p, 0, [0], [0], []) for p in range(count)])
            for error, name, count in topics
        ],
    )


def test_partition_counts_leave_out_only_the_topics_kafka_does_not_know() -> None:
    answer = _answer([(0, "bots.events", 4), (3, "bots.dlq", 0), (0, "bots.stats", 1)])
    assert partition_counts(answer) == {"bots.events": 4, "bots.stats": 1}
    version_0 = MetadataResponse_v0([(0, "h", 9092)], [(0, "t", [(0, 0, 0, [0], [0])])])
    assert partition_counts(version_0) == {"t": 1}


def test_an_answer_of_a_broker_on_its_way_down_is_no_answer_not_a_deleted_topic() -> None:
    # No brokers (a broker stopping), or a topic without a leader: Kafka is not up, and
    # the topic is not reported missing.
    with pytest.raises(KafkaConnectionError, match="no brokers"):
        partition_counts(_answer([(0, "bots.events", 4)], brokers=0))
    with pytest.raises(LeaderNotAvailableError, match=r"topic bots\.events"):
        partition_counts(_answer([(5, "bots.events", 0)]))


class Answering(FakeAioKafkaClient):
    """Brokers that answer with the metadata answers given per node."""

    def __init__(self, answers: dict[int, Any]) -> None:
        super().__init__(answering=set(answers), brokers=sorted(answers))
        self.answers = answers

    async def bootstrap(self) -> None:
        pass

    async def send(self, node: int, request: Any) -> Any:
        await asyncio.sleep(0.01 * node)  # node 0 answers first
        return self.answers[node]

    async def close(self) -> None:
        pass


def _probe_of(client: Answering) -> BrokerProbe:
    return BrokerProbe(
        "kafka:9092",
        "bots.events",
        client_factory=lambda: _AioKafkaMetadata(client),  # type: ignore[arg-type]
    )


async def test_a_probe_whose_answer_has_no_brokers_reports_kafka_down() -> None:
    p = _probe_of(Answering({0: _answer([], brokers=0)}))
    assert not await p.check()
    assert p.topic_found  # not said to be deleted
    ok, why = p.health()
    assert not ok and "unreachable" in why and "no brokers" in why


async def test_one_broker_on_its_way_down_does_not_make_the_cluster_down() -> None:
    # The stopping broker answers first; the next broker's answer counts.
    p = _probe_of(Answering({0: _answer([], brokers=0), 1: _answer([(0, "bots.events", 4)])}))
    assert await p.check()
    assert (p.up, p.topic_found, p.partitions) == (True, True, 4)


async def test_a_topic_kafka_refuses_is_named_kafka_being_up() -> None:
    p = _probe_of(Answering({0: _answer([(29, "bots.events", 0)])}))
    assert await p.check()
    assert p.up  # Kafka answers: the worker's kafka_up stays 1
    ok, why = p.health()
    assert not ok
    assert "refuses: TopicAuthorizationFailedError for the topic bots.events" in why
    assert "ACLs" in why
    p._factory = lambda: _AioKafkaMetadata(Answering({0: _answer([(0, "bots.events", 4)])}))  # type: ignore[arg-type]
    p._client = None
    assert await p.check()
    assert p.health() == (True, "Kafka at kafka:9092 answers")


async def test_a_refusal_from_one_broker_is_reported_whatever_another_one_does() -> None:
    class Refusing(Answering):
        async def send(self, node: int, request: Any) -> Any:
            if node == 1:
                await asyncio.sleep(0.02)
                raise NodeNotReadyError("node 1 not ready")
            return await super().send(node, request)

    p = _probe_of(Refusing({0: _answer([(29, "bots.events", 0)]), 1: None}))
    assert await p.check()
    assert "refuses: TopicAuthorizationFailedError" in p.health()[1]
