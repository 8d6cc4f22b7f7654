"""The two producers bots use: ``AsyncProducer`` on the bot's own event loop, and
``SyncProducer`` for ordinary scripts, whose event loop runs in a background thread.

Both hand records to an ``Engine`` through a bounded in-memory queue: the emitting call
appends and returns; when the queue is full it waits at most ``emit_block_ms`` for room,
then drops the event (counted in ``dropped_queue_full``, one warning).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import time
import weakref
from types import TracebackType
from typing import Any

from producers.config import ProducerConfig
from producers.engine import Engine, TransportFactory
from producers.transport import KafkaTransport
from schemas.env import from_env

__all__ = ["AsyncProducer", "SyncProducer"]

_POLL_S = 0.0005


class _Base:
    def __init__(
        self,
        config: ProducerConfig | None = None,
        *,
        spool_name: str = "default",
        transport_factory: TransportFactory = KafkaTransport,
    ) -> None:
        self.config = config if config is not None else from_env(ProducerConfig)
        self.engine = Engine(
            self.config, spool_name=spool_name, transport_factory=transport_factory
        )
        self._block_s = max(0.0, self.config.emit_block_ms / 1000)
        # Set in a child process forked after a SyncProducer's thread started (``_after_fork``).
        self._forked_from: int | None = None

    @property
    def topic(self) -> str:
        return self.config.topic

    def stats(self) -> dict[str, Any]:
        """Counters (sent, already_delivered, spooled, spool_bytes, failed_sends, dropped_*) and
        current depths. ``already_delivered`` (part of ``sent``) counts spooled events whose
        acknowledgement was lost that were found on the broker, so not sent again."""
        return self.engine.snapshot()

    def _dropped_closed(self) -> bool:
        self.engine.stats.add("dropped_closed")
        if self._forked_from is not None:
            self.engine.stats.warn_once(
                "forked",
                f"this BotLogger was made in process {self._forked_from} before it forked: "
                "its sending thread stayed there, so this process cannot send through it and "
                "its events are dropped. Make the BotLogger in the child process",
            )
            return False
        self.engine.stats.warn_once("closed", "event emitted after close() was dropped")
        return False

    def _dropped_full(self) -> bool:
        self.engine.stats.add("dropped_queue_full")
        self.engine.stats.warn_once(
            "queue_full",
            f"in-memory queue full for {self.config.emit_block_ms} ms "
            "(BOTWATCH_QUEUE_MAX_EVENTS, BOTWATCH_EMIT_BLOCK_MS): events dropped",
        )
        return False


class SyncProducer(_Base):
    """A producer for threads: ``send`` is safe from any thread and returns within the bound.

    ``start`` launches a daemon thread that owns the event loop, the aiokafka producer and the
    spool; ``close`` (also run at interpreter exit) flushes, spools what is left and stops it.
    """

    def __init__(
        self,
        config: ProducerConfig | None = None,
        *,
        spool_name: str = "default",
        transport_factory: TransportFactory = KafkaTransport,
    ) -> None:
        super().__init__(config, spool_name=spool_name, transport_factory=transport_factory)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        _STARTED.add(self)

    def start(self) -> SyncProducer:
        """Start the background thread; returns at once (Kafka is reached in the background)."""
        with self._lock:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._thread_main, args=(ready,), name="botwatch-producer", daemon=True
            )
            self._thread.start()
            ready.wait()
            atexit.register(self.close)
        return self

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.engine.start())
            ready.set()
            loop.run_forever()
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    @property
    def thread_id(self) -> int | None:
        """The background thread's ident (log records from it are not published again)."""
        return self._thread.ident if self._thread is not None else None

    def send(self, key: bytes, value: bytes) -> bool:
        """Queue one record; waits at most ``emit_block_ms`` for room. False when dropped."""
        engine = self.engine
        if engine.offer(key, value):
            return True
        if engine.closed:
            return self._dropped_closed()
        deadline = time.monotonic() + self._block_s
        while time.monotonic() < deadline:
            time.sleep(_POLL_S)
            if engine.offer(key, value):
                return True
        return self._dropped_full()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is acknowledged (or ``timeout``); True if all were."""
        if self._forked_from is not None:
            return False
        timeout = self.config.flush_timeout_s if timeout is None else timeout
        return bool(self._call(self.engine.flush(timeout), timeout))

    def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` s, spool the rest, stop the thread. Idempotent."""
        if self._forked_from is not None:
            return  # the thread, its loop and the spool are the parent's
        timeout = self.config.flush_timeout_s if timeout is None else timeout
        with self._lock:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None or self.engine.closed:
                return
            atexit.unregister(self.close)
        self._call(self.engine.close(timeout), timeout + 10.0)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5.0)

    def _call(self, coro: Any, timeout: float) -> Any:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            return None
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout + 1.0)
        except TimeoutError:
            future.cancel()
            return None

    def __enter__(self) -> SyncProducer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncProducer(_Base):
    """A producer on the running event loop: ``await send(...)`` or ``send_nowait(...)``.

    Use ``async with AsyncProducer() as producer:`` or ``await start()`` / ``await close()``;
    unlike ``SyncProducer`` it cannot flush at interpreter exit, so close it.
    """

    async def start(self) -> AsyncProducer:
        await self.engine.start()
        atexit.register(self._warn_unclosed)
        return self

    def _warn_unclosed(self) -> None:
        """At interpreter exit, a producer never closed has lost what it still held in memory
        (its event loop is gone): say so rather than nothing."""
        if self.engine.closed:
            return
        held = self.engine.snapshot()
        lost = held["queued"] + held["in_flight"]
        if lost:
            self.engine.stats.warn_once(
                "unclosed",
                f"an AsyncBotLogger (AsyncProducer) was never closed: {lost} event(s) it held "
                "in memory were not sent. Use `async with` or `await bot.close()`",
            )

    def send_nowait(self, key: bytes, value: bytes) -> bool:
        """Queue one record without waiting; False (counted) when the queue is full."""
        if self.engine.offer(key, value):
            return True
        return self._dropped_closed() if self.engine.closed else self._dropped_full()

    async def send(self, key: bytes, value: bytes) -> bool:
        """Queue one record; waits at most ``emit_block_ms`` for room. False when dropped."""
        engine = self.engine
        if engine.offer(key, value):
            return True
        if engine.closed:
            return self._dropped_closed()
        deadline = time.monotonic() + self._block_s
        while time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
            if engine.offer(key, value):
                return True
        return self._dropped_full()

    async def flush(self, timeout: float | None = None) -> bool:
        timeout = self.config.flush_timeout_s if timeout is None else timeout
        return await self.engine.flush(timeout)

    async def close(self, timeout: float | None = None) -> None:
        timeout = self.config.flush_timeout_s if timeout is None else timeout
        atexit.unregister(self._warn_unclosed)
        await self.engine.close(timeout)

    async def __aenter__(self) -> AsyncProducer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# Producers whose thread may be running; weak, so that a producer dropped is forgotten.
_STARTED: weakref.WeakSet[SyncProducer] = weakref.WeakSet()


def _after_fork() -> None:
    """In a child process: the producers' threads stayed in the parent, which also sends
    what their queues held. The child's copies turn closed (an event is then dropped with a
    warning saying why), and neither flush nor close waits for a thread that is not there."""
    parent = os.getppid()
    for producer in list(_STARTED):
        if producer._thread is not None and producer._forked_from is None:
            producer._forked_from = parent
            producer.engine.forked()


os.register_at_fork(after_in_child=_after_fork)
