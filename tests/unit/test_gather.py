"""``gather_all``: every step ends before the first failure is raised."""

from __future__ import annotations

import asyncio

import pytest

from schemas.gather import gather_all


async def test_results_in_order() -> None:
    async def value(v: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return v

    assert await gather_all(value(1, 0.02), value(2, 0)) == [1, 2]


async def test_the_first_failure_is_raised_once_every_step_has_ended() -> None:
    ended: list[str] = []

    async def fail(name: str) -> None:
        ended.append(name)
        raise ValueError(name)

    async def slow() -> None:
        await asyncio.sleep(0.05)
        ended.append("slow")

    with pytest.raises(ValueError, match="first"):
        await gather_all(fail("first"), slow(), fail("second"))
    assert sorted(ended) == ["first", "second", "slow"]  # slow was not left running
