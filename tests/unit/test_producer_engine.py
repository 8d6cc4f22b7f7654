"""The SDK engine's sender loop stops when cancelled, whatever else arrives in that turn."""

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
