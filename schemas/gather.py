"""Awaiting several steps at once, with none left running behind a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def gather_all(*steps: Awaitable[Any]) -> list[Any]:
    """Run ``steps`` concurrently; once every one has ended, raise the first failure.

    ``asyncio.gather`` raises as soon as one step fails and leaves the others running: a
    caller that retries would then run a step twice at once.
    """
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes
