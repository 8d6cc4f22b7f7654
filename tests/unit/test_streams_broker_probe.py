"""The worker's Kafka probe: down on the first unanswered request, up on the next answer."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.broker_probe import BrokerProbe


class FakeClient:
    """Answers like aiokafka's client; ``mode`` is "ok", "refused" or "hang"."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.closed = False

    async def bootstrap(self) -> None:
        self.cluster.bootstraps += 1
        await self._answer()

    async def fetch_all_metadata(self) -> Any:
        self.cluster.requests += 1
        await self._answer()
        return {}

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
        self.clients: list[FakeClient] = []

    def client(self) -> FakeClient:
        client = FakeClient(self)
        self.clients.append(client)
        return client


def probe(cluster: FakeCluster, now: list[float]) -> BrokerProbe:
    return BrokerProbe(
        "kafka-1:9092", timeout_s=0.05, client_factory=cluster.client, clock=lambda: now[0]
    )


async def test_down_while_refused_then_up_again_with_the_time_it_went_down() -> None:
    cluster, now = FakeCluster(), [1_795_428_000.0]
    p = probe(cluster, now)
    assert await p.check()
    assert p.health() == (True, "Kafka at kafka-1:9092 answers")
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
