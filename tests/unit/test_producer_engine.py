"""The SDK engine: its sender loop stops when cancelled; a record whose send waits is pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from producers import ProducerConfig
from producers.engine import Engine


async def test_a_cancellation_that_arrives_with_a_wake_up_is_not_lost(tmp_path: Path) -> None:
    # ``close()`` cancels the sender loop and waits for it. With ``asyncio.wait_for`` in its
    # idle sleep (Python 3.11), a wake-up in the same turn swallowed the cancellation: the
    # loop went on and ``close()`` never returned.
    engine = Engine(ProducerConfig(topic="t", spool_dir=tmp_path / "spool"))
    engine._wakeup = asyncio.Event()
    sleeping = asyncio.create_task(engine._sleep())
    await asyncio.sleep(0)  # now idle, waiting to be woken
    engine._wakeup.set()  # woken ...
    sleeping.cancel()  # ... as the cancellation arrives
    with pytest.raises(asyncio.CancelledError):
        await sleeping


class _StuckTransport:
    """``send`` waits for ever, as aiokafka's does for the metadata of a topic that does not
    exist (until its request timeout)."""

    def __init__(self, config: ProducerConfig) -> None:
        self.sending = asyncio.Event()

    async def start(self) -> None:
        return None

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sending.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    async def stop(self, timeout: float) -> None:
        return None


async def test_an_event_whose_send_waits_is_pending_until_spooled_at_close(
    tmp_path: Path,
) -> None:
    transports: list[_StuckTransport] = []

    def factory(config: ProducerConfig) -> _StuckTransport:
        transports.append(_StuckTransport(config))
        return transports[-1]

    engine = Engine(
        ProducerConfig(topic="t", spool_dir=tmp_path / "spool"), transport_factory=factory
    )
    await engine.start()
    assert engine.offer(b"bot", b'{"event_id": "e1"}')
    engine._wake()
    for _ in range(200):
        if transports and transports[0].sending.is_set():
            break
        await asyncio.sleep(0.005)
    assert await engine.flush(0.1) is False  # not acknowledged: not delivered
    await engine.close(0.2)
    assert engine.stats.spooled == 1
    assert engine.snapshot()["dropped_spool_error"] == 0
