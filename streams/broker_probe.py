"""Whether Kafka answers, for the worker's ``/ready``.

faust's consumer rides out a broker outage in its own thread, retrying quietly: nothing the
worker sees changes, and ``/ready`` kept saying "consuming" while no broker was there. A
metadata request every few seconds on a connection of its own says whether the cluster
answers at all. It asks about the worker's own topics only: the metadata of every topic
costs the worker and the broker a few milliseconds per thousand topics, every few seconds.
The answer also says how many partitions the events topic has now (partitions added while
the worker runs are never read by it: see ``streams.topics``), and which of the topics the
worker writes to are gone: a write to a deleted topic waits (aiokafka retries it until the
topic is back), and with it every batch, while nothing else looks wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

from aiokafka import AIOKafkaClient
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest

from schemas.background import Background

T = TypeVar("T")


class MetadataClient(Protocol):
    async def bootstrap(self) -> None: ...

    async def partition_counts(self, topics: list[str]) -> dict[str, int]:
        """Partitions of each of ``topics`` that exists."""
        ...

    async def close(self) -> None: ...


class BrokerProbe:
    """Asks the cluster about ``topic`` and ``outputs`` every ``interval_s``; a request that
    fails or takes longer than ``timeout_s`` marks Kafka down until the next one that
    succeeds."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        outputs: Sequence[str] = (),
        interval_s: float = 2.0,
        timeout_s: float = 5.0,
        client_factory: Callable[[], MetadataClient] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.outputs = list(outputs)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._factory = client_factory or self._aiokafka_client
        self._clock = clock
        self._client: MetadataClient | None = None
        self._loop = Background(self._run, "kafka-probe")
        self.up = True  # until a request says otherwise
        self.partitions: int | None = None  # of ``topic``, at the last answer
        self.topic_found = True  # False once an answer says ``topic`` does not exist
        self.missing: list[str] = []  # ``outputs`` the last answer says do not exist
        self.down_since: float | None = None
        self.last_error = ""
        self.refused = ""  # what Kafka said of a topic it will not serve (``TopicRefused``)

    def health(self) -> tuple[bool, str]:
        if self.refused:
            return False, (
                f"Kafka at {self.bootstrap} answers, and refuses: {self.refused}. Check the "
                "topic's name, and that the worker may use it (Kafka's ACLs)"
            )
        if self.up:
            return True, f"Kafka at {self.bootstrap} answers"
        since = datetime.fromtimestamp(self.down_since or 0, UTC).isoformat(timespec="seconds")
        return False, (
            f"Kafka at {self.bootstrap} unreachable since {since} ({self.last_error}): "
            "records wait in Kafka and are read once it answers"
        )

    async def check(self) -> bool:
        """One metadata request; returns whether it was answered."""
        try:
            async with asyncio.timeout(self.timeout_s):
                client = await self._connected()
                counts = await client.partition_counts([self.topic, *self.outputs])
        except TopicRefused as exc:
            self.up, self.down_since, self.last_error, self.refused = True, None, "", str(exc)
            return True
        except Exception as exc:  # any other failure means: not answering
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self.timeout_s:g} s"
            else:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._failed(error)
            return False
        self.up, self.down_since, self.last_error, self.refused = True, None, "", ""
        self.partitions = counts.get(self.topic)
        self.topic_found = self.topic in counts
        self.missing = [t for t in self.outputs if t not in counts]
        return True

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)

    async def _connected(self) -> MetadataClient:
        if self._client is None:
            client = self._factory()
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self._client = client
        return self._client

    def _failed(self, error: str) -> None:
        if self.up:
            self.down_since = self._clock()
        self.up = False
        self.last_error = error

    def _aiokafka_client(self) -> MetadataClient:
        return _AioKafkaMetadata(
            AIOKafkaClient(
                bootstrap_servers=self.bootstrap,
                client_id="botwatch-kafka-probe",
                request_timeout_ms=int(self.timeout_s * 1000),
            )
        )


def partition_counts(answer: Any) -> dict[str, int]:
    """The partition count of each topic a metadata answer knows; a topic it says does not
    exist is left out.

    Only "unknown topic" means missing. A broker on its way down answers with no brokers
    (or a topic with another error, such as no leader): aiokafka's ``ClusterMetadata``
    drops such a topic as if it did not exist, and ``/ready`` said the events topic was
    deleted while the broker was only stopping. Such an answer raises: Kafka is not up.
    """
    if not answer.brokers:
        raise KafkaConnectionError("Kafka answered with no brokers (it is stopping or starting)")
    counts: dict[str, int] = {}
    for entry in answer.topics:
        # (error, name, partitions) in version 0; (error, name, internal, partitions, ...) after.
        error, name = entry[0], entry[1]
        partitions = entry[2] if answer.API_VERSION == 0 else entry[3]
        if error == UnknownTopicOrPartitionError.errno:
            continue
        if error:
            problem: type[KafkaError] = for_code(error)
            if problem in _REFUSALS:
                raise TopicRefused(f"{problem.__name__} for the topic {name}")
            raise problem(f"Kafka answered {problem.__name__} for the topic {name}")
        counts[name] = len(partitions)
    return counts


class TopicRefused(Exception):
    """Kafka answered, and refuses a topic: its name is not valid, or the worker may not
    use it (ACLs). Kafka is up; the worker is not ready."""


# What a healthy cluster answers for a topic it will not serve (besides unknown topics).
_REFUSALS: Final = frozenset({TopicAuthorizationFailedError, InvalidTopicError})


class _AioKafkaMetadata:
    """aiokafka's client, asked about some topics only: its ``fetch_all_metadata`` lists
    every topic of the cluster (30 ms of the worker's CPU with 1,800 topics, 0.2 ms for one).
    Every known broker is asked at once and the first answer counts, so one broker down (or
    one that never answers) does not make the cluster down."""

    def __init__(self, client: AIOKafkaClient) -> None:
        self._client = client

    async def bootstrap(self) -> None:
        await self._client.bootstrap()

    async def partition_counts(self, topics: list[str]) -> dict[str, int]:
        return await self._first_answer(topics, partition_counts)

    async def _first_answer(self, topics: list[str], read: Callable[[Any], T]) -> T:
        """``read`` of the first metadata answer it accepts; an answer it raises for (a
        broker on its way down) counts as that broker not answering."""
        nodes = [broker.nodeId for broker in self._client.cluster.brokers()]
        if not nodes:
            raise KafkaConnectionError("no broker known from the bootstrap servers")
        # A metadata request may create a missing topic; the probe only asks.
        request = MetadataRequest(topics, allow_auto_topic_creation=False)
        asks = [asyncio.ensure_future(self._client.send(node, request)) for node in nodes]
        try:
            error: BaseException | None = None
            for answer in asyncio.as_completed(asks):
                try:
                    return read(await answer)
                except TopicRefused:
                    raise  # an answer: Kafka is up, and that is what it says
                except Exception as exc:  # another broker may still answer
                    error = exc
            assert error is not None
            raise error
        finally:
            for ask in asks:
                ask.cancel()

    async def close(self) -> None:
        await self._client.close()
