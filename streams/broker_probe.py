"""Whether Kafka answers, for the worker's ``/ready``.

faust's consumer rides out a broker outage in its own thread, retrying quietly: nothing the
worker sees changes, and ``/ready`` kept saying "consuming" while no broker was there. A
metadata request every few seconds on a connection of its own says whether the cluster
answers at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaClient

from schemas.background import Background


class MetadataClient(Protocol):
    async def bootstrap(self) -> None: ...

    async def fetch_all_metadata(self) -> Any: ...

    async def close(self) -> None: ...


class BrokerProbe:
    """Asks the cluster for its metadata every ``interval_s``; a request that fails or takes
    longer than ``timeout_s`` marks Kafka down until the next one that succeeds."""

    def __init__(
        self,
        bootstrap: str,
        *,
        interval_s: float = 2.0,
        timeout_s: float = 5.0,
        client_factory: Callable[[], MetadataClient] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap = bootstrap
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._factory = client_factory or self._aiokafka_client
        self._clock = clock
        self._client: MetadataClient | None = None
        self._loop = Background(self._run, "kafka-probe")
        self.up = True  # until a request says otherwise
        self.down_since: float | None = None
        self.last_error = ""

    def health(self) -> tuple[bool, str]:
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
                await client.fetch_all_metadata()
        except Exception as exc:  # any failure means: not answering
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self.timeout_s:g} s"
            else:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._failed(error)
            return False
        self.up, self.down_since, self.last_error = True, None, ""
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
        client: MetadataClient = AIOKafkaClient(
            bootstrap_servers=self.bootstrap,
            client_id="botwatch-kafka-probe",
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        return client
