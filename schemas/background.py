"""A loop that runs beside the worker, with a clear lifecycle: ``start()`` creates its task,
``stop()`` cancels it and waits until it has ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._run = run
        self.name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once; again after ``stop``)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait for it; a cancellation of the caller still propagates."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("the %s loop had ended with %r", self.name, task.exception())
