"""What every alert receiver shares: its own queue and worker, retries, metrics, logging.

A receiver is fed by ``submit(alert)``, which never waits: the record goes into the
receiver's bounded queue (when it is full, the oldest waiting notification is dropped and
counted), and the receiver's worker task delivers the queue in order. A slow or hanging
receiver therefore delays only its own notifications, never the stream nor the other
receivers. Each request has a timeout; a failed one (refused, reset, timeout, 408, 425, 429,
5xx) is retried with exponential backoff and full jitter (``sinks.backoff``), by default
until the receiver takes it (a resolution lost to a receiver down for a minute left its
incident open for good), or up to ``retries`` times, after which the notification is
dropped and counted. Meanwhile the receiver's later notifications wait in its queue; a
notification whose alert has a newer one queued meanwhile is given up (counted). Any
other 4xx means the receiver refuses the payload: it is dropped at once, and counted.

Failures are counted per attempt in ``botwatch_receiver_failures`` and logged once per
state change of the receiver: one warning when it starts failing (or starts refusing, which
drops rather than retries), one when it delivers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

from sinks.backoff import backoff_s
from sinks.receivers.config import ReceiverConfig
from sinks.receivers.metrics import ReceiverMetrics
from sinks.receivers.payloads import check_alert

log = logging.getLogger(__name__)
# ``retries`` that means: until the receiver takes it.
UNTIL_DELIVERED: Final = -1

JSON_HEADERS: Final = {"Content-Type": "application/json"}
RETRY_STATUSES: Final = frozenset({408, 425, 429})
_TRANSPORT_ERRORS: Final = (aiohttp.ClientError, OSError)

Alert = Mapping[str, Any]
Sleep = Callable[[float], Awaitable[None]]


class Reply(NamedTuple):
    status: int
    body: bytes
    retry_after_s: float | None = None


class Transport(Protocol):
    """Posts one request body; raises ``TimeoutError``, ``aiohttp.ClientError`` or ``OSError``
    when no answer came."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> Reply: ...


class HttpTransport:
    """An aiohttp session of one receiver's own (so its connections are its own too)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> Reply:
        if self._session is None:
            raise RuntimeError("HttpTransport.post before start()")
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(
            url, data=body, headers=dict(headers), timeout=timeout
        ) as response:
            payload = await response.read()
            return Reply(response.status, payload, _retry_after(response.headers))


def shown_url(url: str, *, path_segments: int | None = None) -> str:
    """``url`` for messages: no credentials, no query, and only the first ``path_segments``
    segments of its path (None: all). A Slack webhook's path is its secret; so is the
    path after the first segment of Discord's, Teams' and Mattermost's webhooks."""
    parts = urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    path = parts.path
    if path_segments is not None:
        segments = path.strip("/").split("/") if path.strip("/") else []
        if len(segments) > path_segments:
            path = "/" + "/".join([*segments[:path_segments], "…"])
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def url_problem(url: str) -> str | None:
    """What keeps ``url`` from being a receiver's URL (None: nothing). Says it without the
    URL's credentials, query and path (a Slack webhook's path is its secret)."""
    head, slash, _ = url.partition("/")
    bare = repr(head.rpartition("@")[2] + ("/…" if slash else ""))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        scheme, sep, _ = url.partition("://")
        return f"{repr(scheme + sep + '…') if sep else bare}: {exc}"
    shown = shown_url(url, path_segments=0) if parts.hostname else bare
    if parts.scheme not in ("http", "https"):
        return f"{shown} is not an http:// or https:// URL (such as http://127.0.0.1:9093)"
    if not parts.hostname:
        return f"{shown} names no host (such as http://127.0.0.1:9093)"
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)


class Receiver(ABC):
    """One destination of alert notifications, with its own queue and worker task."""

    kind: ClassVar[str]
    """Default name, and the ``receiver`` label of its metrics."""
    max_batch: ClassVar[int] = 1
    """Alert records per request."""

    def __init__(
        self,
        url: str,
        config: ReceiverConfig | None = None,
        *,
        name: str | None = None,
        registry: CollectorRegistry | None = None,
        transport: Transport | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        """``transport``, ``sleep``, ``rand`` and ``now`` are for tests to replace."""
        problem = url_problem(url) if url else "no URL given"
        if problem is not None:
            raise ValueError(f"{type(self).__name__}: {problem}")
        self.config = config or ReceiverConfig()
        if self.config.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.config.retries < UNTIL_DELIVERED:
            raise ValueError(f"retries must be {UNTIL_DELIVERED} (until delivered) or more")
        self.url = url
        self.name = name or self.kind
        self.metrics = ReceiverMetrics.of(registry)
        self.transport: Transport = transport or HttpTransport()
        self._sleep = sleep
        self._rand = rand
        self._now = now
        self._queue: deque[Alert] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._ok = True
        self._failed_attempts = 0
        self._last_error = ""
        self._overflowing = False
        self._retrying = True  # what the last failure led to: a retry, or a drop
        self._delivering: list[Alert] = []
        self.metrics.up.labels(receiver=self.name).set(1)
        self.metrics.queued.labels(receiver=self.name).set(0)

    # -- what each receiver defines ------------------------------------------------------

    @property
    @abstractmethod
    def post_url(self) -> str:
        """Where the requests go."""

    @property
    def display_url(self) -> str:
        return shown_url(self.post_url, path_segments=1)

    @abstractmethod
    def body(self, batch: list[Alert]) -> Any:
        """The JSON document of one request about ``batch`` (built anew for each attempt)."""

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            await self.transport.start()
            self._task = asyncio.create_task(self._run(), name=f"receiver-{self.name}")

    async def stop(self, grace_s: float | None = None) -> None:
        """Wait up to ``grace_s`` (default: the config's) for the queue to be delivered, then
        stop the worker; notifications still waiting are dropped and counted."""
        task, self._task = self._task, None
        if task is None:
            return
        grace = self.config.stop_grace_s if grace_s is None else grace_s
        if grace > 0 and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=grace)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The one being retried when the worker stopped counts too (``_run`` counted it).
        undelivered = [*self._delivering, *self._queue]
        self._delivering = []
        if self._queue:
            self.metrics.dropped.labels(receiver=self.name, reason="stopped").inc(len(self._queue))
            self._queue.clear()
            self._set_queued()
        if undelivered:
            first = undelivered[0]
            log.warning(
                "alert receiver %s at %s stopped with %d notification(s) undelivered, the "
                "first %s %s of %s since %s; they are not sent again after a restart "
                "(last error: %s)",
                self.name,
                self.display_url,
                len(undelivered),
                first.get("state"),
                first.get("rule"),
                first.get("bot_id"),
                first.get("starts_at"),
                self._last_error or "none",
            )
        self._idle.set()
        await self.transport.close()

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- feeding -------------------------------------------------------------------------

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery; never waits. When the queue is full the oldest
        waiting notification is dropped (``botwatch_receiver_dropped{reason="queue_full"}``)."""
        check_alert(alert)
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()
            self.metrics.dropped.labels(receiver=self.name, reason="queue_full").inc()
            if not self._overflowing:
                self._overflowing = True
                log.warning(
                    "alert receiver %s cannot keep up: its queue of %d is full, the oldest "
                    "notifications are being dropped",
                    self.name,
                    self.config.queue_size,
                )
        self._queue.append(alert)
        self._set_queued()
        self._wake()

    def restore(self, alerts: Sequence[Alert]) -> None:  # noqa: B027 - most do not re-send
        """Firing alerts notified before: nothing to do for a receiver that does not re-send
        them (a webhook heard of them once, which is enough)."""

    def withdraw(self, fingerprints: Iterable[str]) -> None:  # noqa: B027 - as restore
        """Alerts another worker owns now: nothing to do for a receiver without re-sends."""

    def lost_if_stopped(self, batch: list[Alert]) -> list[Alert]:
        """What of ``batch`` nothing sends again if the worker stops before it is delivered
        (said at stop): all of it, unless the receiver re-sends it by itself."""
        return batch

    def refresh(self, alerts: Sequence[Alert]) -> None:  # noqa: B027 - as restore
        """Firing alerts as they are now (their value moves): nothing to do for a receiver
        that does not re-send them."""

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def ok(self) -> bool:
        """False from a failed attempt until the next delivery succeeds."""
        return self._ok

    def health(self) -> tuple[bool, str]:
        where = f"alert receiver {self.name} at {self.display_url}"
        if self._ok:
            return True, f"{where}: delivering"
        return False, (
            f"{where}: failing, {self._failed_attempts} failed attempt(s), "
            f"last error {self._last_error}"
        )

    # -- the worker ----------------------------------------------------------------------

    def _wake(self) -> None:
        self._idle.clear()
        self._wakeup.set()

    def next_batch(self) -> list[Alert]:
        """The next request's alert records, oldest first; empty when there is nothing."""
        batch: list[Alert] = []
        while self._queue and len(batch) < self.max_batch:
            batch.append(self._queue.popleft())
        if not self._queue:
            self._overflowing = False
        self._set_queued()
        return batch

    async def _run(self) -> None:
        while True:
            batch = self.next_batch()
            if not batch:
                self._wakeup.clear()
                self._idle.set()
                await self._wakeup.wait()
                continue
            self._delivering = self.lost_if_stopped(batch)
            try:
                await self.deliver(batch)
            except asyncio.CancelledError:
                self.metrics.dropped.labels(receiver=self.name, reason="stopped").inc(len(batch))
                raise
            except Exception:  # a bug must not end the worker: later alerts still go out
                log.exception("alert receiver %s could not deliver a notification", self.name)
                self.metrics.dropped.labels(receiver=self.name, reason="error").inc(len(batch))
            self._delivering = []

    async def deliver(self, batch: list[Alert]) -> bool:
        """Send ``batch`` with retries; True once the receiver accepted it."""
        retries = self.config.retries
        for attempt in itertools.count():
            if attempt:
                self.metrics.retries.labels(receiver=self.name).inc()
            payload = orjson.dumps(self.body(batch))
            verdict, retry_after = await self._attempt(payload)
            if verdict == "ok":
                self.metrics.delivered.labels(receiver=self.name).inc(len(batch))
                return True
            if verdict == "rejected":
                self.metrics.dropped.labels(receiver=self.name, reason="rejected").inc(len(batch))
                return False
            if retries != UNTIL_DELIVERED and attempt >= retries:
                break
            config = self.config
            delay = backoff_s(attempt, config.retry_base_s, config.retry_cap_s, self._rand)
            if retry_after is not None:
                delay = max(delay, min(retry_after, config.retry_cap_s))
            await self._sleep(delay)
            # A notification whose alert has a newer one queued is out of date: retrying it
            # would hold up the newer one behind it for as long as it fails.
            batch = self._not_superseded(batch)
            if self._delivering:
                self._delivering = self.lost_if_stopped(batch)
            if not batch:
                return False
        self.metrics.dropped.labels(receiver=self.name, reason="retries_exhausted").inc(len(batch))
        return False

    def _not_superseded(self, batch: list[Alert]) -> list[Alert]:
        """``batch`` without the records of alerts that have a newer record queued (those
        are dropped and counted, reason ``superseded``)."""
        queued = {str(a["fingerprint"]) for a in self._queue}
        kept = [a for a in batch if str(a["fingerprint"]) not in queued]
        if len(kept) < len(batch):
            dropped = self.metrics.dropped.labels(receiver=self.name, reason="superseded")
            dropped.inc(len(batch) - len(kept))
        return kept

    async def _attempt(self, payload: bytes) -> tuple[str, float | None]:
        """("ok" | "retry" | "rejected", Retry-After seconds)."""
        started = time.perf_counter()
        try:
            reply = await self.transport.post(
                self.post_url, payload, JSON_HEADERS, self.config.timeout_s
            )
        except TimeoutError:
            self._failed("timeout", f"no answer within {self.config.timeout_s:g} s")
            return "retry", None
        except _TRANSPORT_ERRORS as exc:
            # aiohttp's text of some (a redirect loop, a proxy's refusal) holds the URL whole,
            # a webhook's secret path with it.
            said = str(exc).replace(self.post_url, self.display_url)
            text = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
            self._failed("connection", text)
            return "retry", None
        self.metrics.latency.labels(receiver=self.name).observe(time.perf_counter() - started)
        if reply.status < 300:
            self._succeeded()
            return "ok", None
        error = f"HTTP {reply.status}: {reply.body[:200].decode('utf-8', 'replace')}"
        if reply.status in RETRY_STATUSES or reply.status >= 500:
            self._failed(f"http_{reply.status // 100}xx", error)
            return "retry", reply.retry_after_s
        self._failed("http_4xx", error, retrying=False)
        return "rejected", None

    def _succeeded(self) -> None:
        if not self._ok:
            # As loud as the failure it ends: at the default level, a log showing only the
            # failure reads as a receiver still down.
            log.warning(
                "alert receiver %s at %s delivers again, after %d failed attempt(s)",
                self.name,
                self.display_url,
                self._failed_attempts,
            )
            self._ok = True
            self.metrics.up.labels(receiver=self.name).set(1)
        self._failed_attempts = 0

    def _failed(self, reason: str, error: str, *, retrying: bool = True) -> None:
        self.metrics.failures.labels(receiver=self.name, reason=reason).inc()
        self._failed_attempts += 1
        self._last_error = error
        if not self._ok and retrying == self._retrying:
            return
        self._ok = False
        self._retrying = retrying
        self.metrics.up.labels(receiver=self.name).set(0)
        if retrying:
            log.warning(
                "alert receiver %s at %s is failing: %s; retrying with backoff, further "
                "failures are counted in botwatch_receiver_failures until it delivers again",
                self.name,
                self.display_url,
                error,
            )
        else:
            log.warning(
                "alert receiver %s at %s refuses notifications: %s; each one it refuses is "
                'dropped, not retried (botwatch_receiver_dropped_total{reason="rejected"}): '
                "check that the URL is the receiver's (its path too) and that it takes this "
                "kind of payload",
                self.name,
                self.display_url,
                error,
            )

    def _set_queued(self) -> None:
        self.metrics.queued.labels(receiver=self.name).set(len(self._queue))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None
