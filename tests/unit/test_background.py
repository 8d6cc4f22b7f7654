"""``Background``: a loop started once, stopped by cancelling it; the caller's own
cancellation is never swallowed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from schemas.background import Background


async def test_started_once_and_stopped() -> None:
    ticks: list[int] = []

    async def loop() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.001)

    background = Background(loop, "ticker")
    background.start()
    background.start()  # no second task
    while len(ticks) < 3:
        await asyncio.sleep(0.001)
    await background.stop()
    stopped_at = len(ticks)
    await asyncio.sleep(0.01)
    assert len(ticks) == stopped_at
    assert [t for t in asyncio.all_tasks() if t.get_name() == "ticker"] == []


async def test_a_cancelled_caller_of_stop_is_cancelled() -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)  # takes its time to wind down
                raise

    background = Background(stubborn, "stubborn")
    background.start()
    await asyncio.sleep(0)
    stopping = asyncio.create_task(background.stop())
    await asyncio.sleep(0.01)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping


async def test_a_loop_that_failed_is_reported_when_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    background = Background(broken, "broken")
    background.start()
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.ERROR):
        await background.stop()
    assert "the broken loop had ended with RuntimeError('boom')" in caplog.text
