"""The retention sweeper's schedule: a failed sweep is tried again soon, not an interval later."""

from __future__ import annotations

import asyncio

import pytest

from sinks import sweeper
from sinks.config import SinkConfig


async def test_a_failed_sweep_is_tried_again_after_retry_s_then_every_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    def sweep_once(config: SinkConfig) -> list[str]:
        calls.append(loop.time())
        if len(calls) == 1:
            raise ConnectionError("node down")
        return ["botwatch-events-2020.01.01"]

    monkeypatch.setattr(sweeper, "sweep_once", sweep_once)
    monkeypatch.setattr(sweeper, "RETRY_S", 0.05)
    config = SinkConfig(opensearch_url="http://user:pw@node:9200")
    sweeping = sweeper.RetentionSweeper(config, interval_s=3600.0)
    sweeping.start()
    try:
        for _ in range(200):
            if sweeping.swept:
                break
            await asyncio.sleep(0.01)
    finally:
        await sweeping.stop()
    assert len(calls) == 2  # the second one a retry, not an interval later
    assert sweeping.swept == ["botwatch-events-2020.01.01"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (
        "retention sweep against http://user:***@node:9200 failed (trying again in 0.05 s): "
        "node down"
    )
