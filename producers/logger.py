"""What a bot author writes: ``bot = BotLogger("invoice-bot")``, ``bot.info("sent", n=3)``,
``with bot.job("job-17") as job: ...``; and the same on asyncio with ``AsyncBotLogger``.

Logging calls never raise for transport problems and never wait longer than
``BOTWATCH_EMIT_BLOCK_MS``; they raise ValueError (naming the field) for values the event
contract forbids, because those are bugs in the bot.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from producers.config import ProducerConfig
from producers.events import EventFactory, error_info, exception_text
from producers.producer import AsyncProducer, SyncProducer
from schemas.env import from_env

__all__ = ["AsyncBotLogger", "AsyncJob", "BotLogger", "Job"]

P = ParamSpec("P")
R = TypeVar("R")


class _JobState:
    """What a job's events carry: its id, its retries and how long it has run."""

    def __init__(self, job_id: str, meta: Mapping[str, Any]) -> None:
        self.job_id = job_id
        self.meta = dict(meta)
        self.retry_count = 0
        self._started = time.perf_counter()
        self.outcome: str | None = None

    def restart_clock(self) -> None:
        self._started = time.perf_counter()

    @property
    def duration_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)

    def started(self) -> dict[str, Any]:
        return {
            "level": "info",
            "message": f"job {self.job_id} started",
            "status": "started",
            "meta": self.meta,
        }

    def retried(self, message: str | None, meta: Mapping[str, Any]) -> dict[str, Any]:
        self.retry_count += 1
        return {
            "level": "warning",
            "message": message or f"job {self.job_id} retry {self.retry_count}",
            "status": "retry",
            "retry_count": self.retry_count,
            "meta": {**self.meta, **meta},
        }

    def finished(self, exc: BaseException | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "duration_ms": self.duration_ms,
            "retry_count": self.retry_count,
            "meta": self.meta,
        }
        if exc is None or _clean_exit(exc):
            self.outcome = "success"
            fields.update(level="info", message=f"job {self.job_id} succeeded", status="success")
        else:
            self.outcome = "failure"
            fields.update(
                level="error",
                message=f"job {self.job_id} failed: {type(exc).__name__}: {exception_text(exc)}",
                status="failure",
                error=error_info(exc),
            )
        return fields


def _clean_exit(exc: BaseException) -> bool:
    """``sys.exit()`` or ``sys.exit(0)`` inside a job: the program ends as a success, and so
    does the job (any other exit code is a failure, like an exception)."""
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


class Job:
    """A running job of a ``BotLogger``: ``started`` on enter, ``success`` or ``failure`` on exit
    (with ``duration_ms``, ``retry_count`` and, on an exception, the error; the exception is
    re-raised). Also a decorator: ``@bot.job("nightly")`` starts a fresh job per call, for
    plain and ``async def`` functions."""

    def __init__(self, bot: BotLogger, job_id: str, meta: Mapping[str, Any]) -> None:
        self._bot = bot
        self._job_id = job_id
        self._meta = dict(meta)
        self._state = _JobState(job_id, meta)

    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def retry_count(self) -> int:
        return self._state.retry_count

    @property
    def duration_ms(self) -> float:
        return self._state.duration_ms

    def retry(self, message: str | None = None, **meta: Any) -> None:
        """Count one retry and emit ``status="retry"`` with the new ``retry_count``."""
        self._bot.log(job_id=self._job_id, **self._state.retried(message, meta))

    def debug(self, message: str, **meta: Any) -> None:
        self._bot.log("debug", message, job_id=self._job_id, meta=meta)

    def info(self, message: str, **meta: Any) -> None:
        self._bot.log("info", message, job_id=self._job_id, meta=meta)

    def warning(self, message: str, **meta: Any) -> None:
        self._bot.log("warning", message, job_id=self._job_id, meta=meta)

    def error(self, message: str, **meta: Any) -> None:
        self._bot.log("error", message, job_id=self._job_id, meta=meta)

    def __enter__(self) -> Job:
        self._state = _JobState(self._job_id, self._meta)
        self._bot.log(job_id=self._job_id, **self._state.started())
        self._state.restart_clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bot.log(job_id=self._job_id, **self._state.finished(exc))

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        bot, job_id, meta = self._bot, self._job_id, self._meta
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with Job(bot, job_id, meta):
                    return await func(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            with Job(bot, job_id, meta):
                return func(*args, **kwargs)

        return run


class BotLogger:
    """A bot's event logger for ordinary (threaded) code; owns a ``SyncProducer`` unless given one.

    One per bot per process: its spool lives in ``BOTWATCH_SPOOL_DIR/<bot_id>``.
    """

    def __init__(
        self,
        bot_id: str,
        *,
        config: ProducerConfig | None = None,
        producer: SyncProducer | None = None,
    ) -> None:
        config = config or (producer.config if producer else from_env(ProducerConfig))
        self.events = EventFactory(bot_id, env=config.env)
        self.bot_id = bot_id
        self._owns_producer = producer is None
        self.producer = producer or SyncProducer(config, spool_name=bot_id)
        self.producer.start()
        self._send = self.producer.send
        self._build = self.events.build
        self._key = self.events.key

    def log(
        self,
        level: str,
        message: str,
        *,
        status: str | None = None,
        job_id: str | None = None,
        duration_ms: float | None = None,
        retry_count: int | None = None,
        error: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> bool:
        """Emit one event with any contract field; False when it was dropped (counted).

        A contract field's name in ``meta`` sets that field when it takes the value (see
        ``EventFactory.build``)."""
        value = self._build(
            level,
            message,
            status=status,
            job_id=job_id,
            duration_ms=duration_ms,
            retry_count=retry_count,
            error=error,
            meta=meta,
        )
        return self._send(self._key, value)

    def debug(self, message: str, **meta: Any) -> bool:
        return self._send(self._key, self._build("debug", message, meta=meta))

    def info(self, message: str, **meta: Any) -> bool:
        return self._send(self._key, self._build("info", message, meta=meta))

    def warning(self, message: str, **meta: Any) -> bool:
        return self._send(self._key, self._build("warning", message, meta=meta))

    def error(self, message: str, **meta: Any) -> bool:
        return self._send(self._key, self._build("error", message, meta=meta))

    def critical(self, message: str, **meta: Any) -> bool:
        return self._send(self._key, self._build("critical", message, meta=meta))

    def exception(self, message: str, **meta: Any) -> bool:
        """An ``error`` event carrying the exception being handled."""
        exc = sys.exc_info()[1]
        return self.log(
            "error", message, error=error_info(exc) if exc is not None else None, meta=meta
        )

    def heartbeat(self, message: str = "heartbeat", **meta: Any) -> bool:
        """An ``info`` event with ``status="heartbeat"``: the bot is alive."""
        return self.log("info", message, status="heartbeat", meta=meta)

    def job(self, job_id: str, **meta: Any) -> Job:
        """A job context manager and decorator (see ``Job``)."""
        return Job(self, job_id, meta)

    def stats(self) -> dict[str, Any]:
        return self.producer.stats()

    def flush(self, timeout: float | None = None) -> bool:
        return self.producer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and stop the producer this logger owns (a shared one is left running)."""
        if self._owns_producer:
            self.producer.close(timeout)

    def __enter__(self) -> BotLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncJob:
    """``Job`` for ``AsyncBotLogger``: ``async with bot.job("id") as job`` or ``@bot.job("id")``
    on an ``async def``."""

    def __init__(self, bot: AsyncBotLogger, job_id: str, meta: Mapping[str, Any]) -> None:
        self._bot = bot
        self._job_id = job_id
        self._meta = dict(meta)
        self._state = _JobState(job_id, meta)

    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def retry_count(self) -> int:
        return self._state.retry_count

    async def retry(self, message: str | None = None, **meta: Any) -> None:
        await self._bot.log(job_id=self._job_id, **self._state.retried(message, meta))

    async def info(self, message: str, **meta: Any) -> None:
        await self._bot.log("info", message, job_id=self._job_id, meta=meta)

    async def warning(self, message: str, **meta: Any) -> None:
        await self._bot.log("warning", message, job_id=self._job_id, meta=meta)

    async def error(self, message: str, **meta: Any) -> None:
        await self._bot.log("error", message, job_id=self._job_id, meta=meta)

    async def __aenter__(self) -> AsyncJob:
        self._state = _JobState(self._job_id, self._meta)
        await self._bot.log(job_id=self._job_id, **self._state.started())
        self._state.restart_clock()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._bot.log(job_id=self._job_id, **self._state.finished(exc))

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("AsyncBotLogger.job decorates async functions; use BotLogger.job")
        bot, job_id, meta = self._bot, self._job_id, self._meta

        @functools.wraps(func)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            async with AsyncJob(bot, job_id, meta):
                return await func(*args, **kwargs)

        return run


class AsyncBotLogger:
    """A bot's event logger on asyncio: ``await bot.info(...)``; the sender runs on this loop.

    Started on first use; ``await bot.close()`` (or ``async with``) flushes it.
    """

    def __init__(
        self,
        bot_id: str,
        *,
        config: ProducerConfig | None = None,
        producer: AsyncProducer | None = None,
    ) -> None:
        config = config or (producer.config if producer else from_env(ProducerConfig))
        self.events = EventFactory(bot_id, env=config.env)
        self.bot_id = bot_id
        self._owns_producer = producer is None
        self.producer = producer or AsyncProducer(config, spool_name=bot_id)
        self._started = False

    async def start(self) -> AsyncBotLogger:
        if not self._started:
            await self.producer.start()
            self._started = True
        return self

    async def log(
        self,
        level: str,
        message: str,
        *,
        status: str | None = None,
        job_id: str | None = None,
        duration_ms: float | None = None,
        retry_count: int | None = None,
        error: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> bool:
        value = self.events.build(
            level,
            message,
            status=status,
            job_id=job_id,
            duration_ms=duration_ms,
            retry_count=retry_count,
            error=error,
            meta=meta,
        )
        if not self._started:
            await self.start()
        return await self.producer.send(self.events.key, value)

    async def debug(self, message: str, **meta: Any) -> bool:
        return await self.log("debug", message, meta=meta)

    async def info(self, message: str, **meta: Any) -> bool:
        return await self.log("info", message, meta=meta)

    async def warning(self, message: str, **meta: Any) -> bool:
        return await self.log("warning", message, meta=meta)

    async def error(self, message: str, **meta: Any) -> bool:
        return await self.log("error", message, meta=meta)

    async def critical(self, message: str, **meta: Any) -> bool:
        return await self.log("critical", message, meta=meta)

    async def heartbeat(self, message: str = "heartbeat", **meta: Any) -> bool:
        return await self.log("info", message, status="heartbeat", meta=meta)

    def job(self, job_id: str, **meta: Any) -> AsyncJob:
        return AsyncJob(self, job_id, meta)

    def stats(self) -> dict[str, Any]:
        return self.producer.stats()

    async def flush(self, timeout: float | None = None) -> bool:
        return await self.producer.flush(timeout)

    async def close(self, timeout: float | None = None) -> None:
        if self._owns_producer:
            await self.producer.close(timeout)

    async def __aenter__(self) -> AsyncBotLogger:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
