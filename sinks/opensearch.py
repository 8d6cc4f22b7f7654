"""``OpenSearchSink``: the ``schemas.sink.Sink`` that writes to OpenSearch's ``_bulk`` API.

It posts NDJSON with a plain aiohttp session rather than opensearch-py's client: the body
is assembled from the records' raw bytes (see ``sinks.bulk``), and the client would parse
and re-serialize what is already JSON (``bench/bench_sink.py`` measures the difference).

Every ``write_*`` returns only when each document is written, known to be there already
(a duplicate), or rejected for good, because the worker commits Kafka offsets right after.
Transient failures are retried forever while they last:

- the whole request (refused, reset, timeout, 429, 5xx): exponential backoff with full
  jitter, through a circuit breaker that, once open, lets one probe out per open period
  and makes ``health()`` false (the worker's /ready turns 503 and names OpenSearch); the
  worker's batch does not finish, so it stops pulling: backpressure, Kafka keeps the backlog;
- single items answered 429 or 5xx: resent alone, with the same backoff. Items still
  refused after ``breaker_failures`` rounds (a node past its flood-stage disk watermark
  answers every document 429) also make ``health()`` false, with OpenSearch's reason and
  what to do; the node itself answers, so the circuit stays closed;
- a request refused as too large (413: above the node's ``http.max_content_length``, or a
  proxy's body limit): split in two and each half sent again, and the sink keeps the smaller
  size for later requests, trying twice that size again every ``REGROW_AFTER_S`` (up to
  ``bulk_max_bytes``: a limit raised since is used again without a restart); a document too
  large on its own is rejected, with that reason.

``stop()`` ends the wait: a pending write raises ``SinkStoppedError`` and its batch stays
uncommitted, to be redelivered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

from schemas.gather import gather_all
from schemas.sink import DeadLetterRecord, Rejected, SinkRecord, SinkResult
from sinks.backoff import backoff_s
from sinks.breaker import CircuitBreaker, State
from sinks.bulk import (
    BULK_PATH,
    WRITTEN,
    BulkItem,
    ItemResult,
    Outcome,
    alert_item,
    body,
    classify,
    dlq_item,
    event_items,
    refusal_hint,
    request_docs,
    split,
    stats_item,
)
from sinks.config import SinkConfig, display_url
from sinks.documents import DeadLetterDoc
from sinks.indices import day_of_ms, index_name
from sinks.metrics import SinkMetrics
from sinks.redact import Redactor
from sinks.retention import retention_days
from sinks.sweeper import RetentionSweeper
from sinks.templates import MAPPING_UPDATE_PARAMS, mapping_updates, template_bodies

log = logging.getLogger(__name__)

_NDJSON: Final = {"Content-Type": "application/x-ndjson"}
_JSON: Final = {"Content-Type": "application/json"}
# How a ``_bulk`` answer (filtered by BULK_PATH) begins when every item was written.
_NO_ERRORS: Final = b'{"errors":false'
_POLL_S: Final = 0.25
_CREDENTIALS_HINT: Final = (
    " (OpenSearch refuses the credentials: give a user with the right to write botwatch's "
    "indices and index templates in BOTWATCH_OPENSEARCH_URL, https://user:password@host:9200)"
)
# An idle sink asks OpenSearch whether it answers when no request went out for this long: a
# worker with nothing to write reported "circuit closed" against a node that was down.
PING_IDLE_S: Final = 5.0
_PING_TIMEOUT_S: Final = 5.0
# How long a request size lowered by a 413 is kept before twice it is tried again.
REGROW_AFTER_S: Final = 600.0
_TRANSPORT_ERRORS: Final = (aiohttp.ClientError, TimeoutError, OSError)


class SinkStoppedError(RuntimeError):
    """``stop()`` was called while a write was still waiting for OpenSearch."""


class SinkRequestError(RuntimeError):
    """OpenSearch refused a whole request for a reason retrying cannot fix (a 4xx)."""


class RequestTooLargeError(SinkRequestError):
    """OpenSearch (or a proxy in front of it) refused a request body as too large (413)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass
class _Round:
    """One pass of a write over its pending items: where answers go, what is sent again."""

    results: list[ItemResult | None]
    position: dict[int, int]  # id(item) -> its index in ``results``
    retry: list[BulkItem] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class _Refusal:
    """A write whose items OpenSearch keeps answering 429 or 5xx."""

    since: datetime
    rounds: int = 0
    documents: int = 0
    reason: str = ""


def _transport_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class OpenSearchSink:
    def __init__(
        self,
        config: SinkConfig | None = None,
        *,
        registry: CollectorRegistry | None = None,
        install_templates: bool = True,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """``install_templates``: PUT the index templates before the first write (idempotent),
        so a worker never creates a daily index with dynamic mappings."""
        self.config = config or SinkConfig()
        self.metrics = SinkMetrics(registry)
        self.redactor = Redactor(self.config.redact_keys)
        self._keep = retention_days(self.config)  # where an event of an odd day goes
        self.url = self.config.opensearch_url.rstrip("/")
        self._shown_url = display_url(self.url)
        self._install_templates = install_templates
        self._rand = rand
        self._breaker = CircuitBreaker(
            self.config.breaker_failures, self.config.breaker_open_s, clock
        )
        self._session: aiohttp.ClientSession | None = None
        # Lowered below ``bulk_max_bytes`` when a request is refused as too large (413).
        self.max_request_bytes = self.config.bulk_max_bytes
        self._clock = clock
        self._lowered_at: float | None = None  # when the size was last lowered, or grown
        # OpenSearch's own wait (1 min by default) outlasted the request timeout: a bulk with
        # one document for a red index timed out whole, and looked like a node down.
        wait_ms = int(min(self.config.bulk_shard_wait_s, self.config.request_timeout_s / 2) * 1000)
        self._bulk_path = f"{BULK_PATH}&timeout={max(wait_ms, 1)}ms"
        self.metrics.max_request_bytes.set(self.max_request_bytes)
        self._stopping = asyncio.Event()
        self._templates_done = False
        self._down_since: datetime | None = None
        self._opened_since: datetime | None = None  # the circuit's, for its two log lines
        self._last_request_at = -math.inf  # when a request last went out or ended
        # Writes retrying refused items, by a token of their own (several run at once).
        self._refusals: dict[object, _Refusal] = {}
        self.sweeper = RetentionSweeper(self.config, self.config.retention_sweep_s)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session; needs no OpenSearch yet (the first write waits for it)."""
        if self._session is None:
            self._stopping = asyncio.Event()
            timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self.sweeper.start()

    async def stop(self) -> None:
        """Make pending writes raise ``SinkStoppedError`` and close the session."""
        self._stopping.set()
        await self.sweeper.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> OpenSearchSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def health(self) -> tuple[bool, str]:
        if self._session is None:
            return False, "OpenSearch sink not started"
        state = self._breaker.state
        self.metrics.breaker_state.set(int(state))
        if state is State.CLOSED:
            refused = self._refused_for_long()
            if refused:
                return False, self._refused_reason(refused)
            return True, f"OpenSearch at {self._shown_url}: circuit closed"
        since = self._down_since.isoformat(timespec="seconds") if self._down_since else "?"
        what = "open" if state is State.OPEN else "half-open, probing"
        return False, (
            f"OpenSearch at {self._shown_url} unreachable: circuit {what} since {since}, "
            f"last error {self._breaker.last_error}"
        )

    # -- the Sink interface --------------------------------------------------------------

    async def write_events(self, records: list[SinkRecord]) -> SinkResult:
        now_ms = int(time.time() * 1000)
        prefix = self.config.index_prefix
        items = event_items(records, prefix, self.redactor, keep=self._keep, now_ms=now_ms)
        results = await self._write(items)
        rejected = [
            Rejected(records[item.ref], f"OpenSearch rejected the event: {result.reason}")
            for item, result in zip(items, results, strict=True)
            if result.outcome is Outcome.REJECTED
        ]
        return SinkResult(rejected=rejected)

    async def write_stats(self, windows: list[dict[str, Any]]) -> None:
        """Rejected windows are counted and logged, not raised: each is also on the stats
        topic, and the worker has no dead-letter path for them."""
        prefix = self.config.index_prefix
        items = [stats_item(w, i, prefix) for i, w in enumerate(windows)]
        self._log_rejected("window", items, await self._write(items))

    async def write_alerts(self, alerts: list[dict[str, Any]]) -> None:
        prefix, redactor = self.config.index_prefix, self.redactor
        items = [alert_item(a, i, prefix, redactor) for i, a in enumerate(alerts)]
        self._log_rejected("alert", items, await self._write(items))

    async def write_dead_letters(self, letters: Sequence[DeadLetterDoc | DeadLetterRecord]) -> None:
        """Index dead letters; records read from the topic are read through their headers."""
        docs = [
            DeadLetterDoc.from_kafka(x.key, x.value, x.headers)
            if isinstance(x, DeadLetterRecord)
            else x
            for x in letters
        ]
        prefix, redactor = self.config.index_prefix, self.redactor
        keep, now_ms = self._keep["dlq"], int(time.time() * 1000)
        items = [
            dlq_item(letter, i, prefix, redactor, keep_days=keep, now_ms=now_ms)
            for i, letter in enumerate(docs)
        ]
        results = await self._write(items)
        refused = [
            (docs[item.ref], result.reason)
            for item, result in zip(items, results, strict=True)
            if result.outcome is Outcome.REJECTED
        ]
        if not refused:
            return
        # Its structured copies are what a node may refuse (a term over Lucene's limit, a
        # template changed by hand): the record as text keeps the dead letter searchable.
        reduced = [
            dlq_item(letter, i, prefix, redactor, refusal=reason, keep_days=keep, now_ms=now_ms)
            for i, (letter, reason) in enumerate(refused)
        ]
        again = await self._write(reduced)
        taken = sum(r.outcome is not Outcome.REJECTED for r in again)
        log.warning(
            "OpenSearch refused %d dead letter document(s) of %d (first: %s); %d indexed "
            "again without their event, headers and bot_id fields",
            len(refused),
            len(items),
            refused[0][1],
            taken,
        )
        self._log_rejected("dead letter", reduced, again)

    # -- writing -------------------------------------------------------------------------

    async def _write(self, items: list[BulkItem]) -> list[ItemResult]:
        """Final result per item (never ``RETRY``), in order."""
        if not items:
            return []
        await self._ensure_templates()
        self._regrow()
        results: list[ItemResult | None] = [None] * len(items)
        position = {id(item): n for n, item in enumerate(items)}
        pending = items
        attempt = 0
        config = self.config
        # At most ``bulk_concurrency`` requests at once; each answer is applied as it comes
        # (results are per item, so order does not matter).
        gate = asyncio.Semaphore(max(config.bulk_concurrency, 1))
        token, completed = object(), False
        try:
            while pending:
                round_ = _Round(results, position)
                per_request = request_docs(
                    len(pending), config.bulk_max_docs, config.bulk_concurrency
                )
                chunks = list(split(pending, per_request, self.max_request_bytes))
                await self._send_all(chunks, gate, round_)
                if round_.retry:
                    self.metrics.retries.labels(scope="item").inc(len(round_.retry))
                    self._refused(token, round_)
                    await self._pause(self._backoff(attempt))
                    attempt += 1
                pending = round_.retry
            completed = True
        finally:
            self._write_ended(token, completed)
        return [r for r in results if r is not None]

    async def _send_all(
        self, chunks: list[list[BulkItem]], gate: asyncio.Semaphore, round_: _Round
    ) -> None:
        """Send the chunks concurrently; once every request has ended, raise the first failure."""
        await gather_all(*(self._send(chunk, gate, round_) for chunk in chunks))

    async def _send(self, chunk: list[BulkItem], gate: asyncio.Semaphore, round_: _Round) -> None:
        refused: tuple[int, str] | None = None
        async with gate:  # the body is built here: at most ``bulk_concurrency`` at once
            try:
                payload = await self._request("POST", self._bulk_path, body(chunk), _NDJSON)
            except RequestTooLargeError as exc:
                # Only its size and words are kept: the error's frames hold the whole body.
                refused = (exc.size, str(exc))
            else:
                self._apply(chunk, payload, round_)
        if refused is None:
            return
        size, why = refused
        if len(chunk) == 1:  # says nothing of the size a request may have
            item = chunk[0]
            round_.results[round_.position[id(item)]] = ItemResult(
                Outcome.REJECTED,
                413,
                f"the document makes a request of {size} bytes, more than OpenSearch accepts "
                f"({why}); raise http.max_content_length on the node, or the body limit of "
                "a proxy in front of it",
            )
            self.metrics.rejected.labels(family=item.family).inc()
            return
        self._shrink(size, why)
        half = len(chunk) // 2
        await self._send_all([chunk[:half], chunk[half:]], gate, round_)

    def _shrink(self, size: int, why: str) -> None:
        """Send at most half the refused size from now on (never more than before)."""
        smaller = max(size // 2, 1)
        if smaller >= self.max_request_bytes:
            return
        self.max_request_bytes = smaller
        self._lowered_at = self._clock()
        self.metrics.max_request_bytes.set(smaller)
        log.warning(
            "OpenSearch at %s refused a request of %d bytes as too large (%s); requests are "
            "split and kept to %d bytes from now on. Raise http.max_content_length on the node "
            "(or the body limit of a proxy in front of it), or lower BOTWATCH_BULK_MAX_BYTES "
            "below it",
            self._shown_url,
            size,
            why,
            smaller,
        )

    def _regrow(self) -> None:
        """Twice the lowered request size, ``REGROW_AFTER_S`` after it was last changed: the
        limit that refused it may have been raised. Too large still, it costs one 413."""
        lowered_at, limit = self._lowered_at, self.config.bulk_max_bytes
        if lowered_at is None or self._clock() - lowered_at < REGROW_AFTER_S:
            return
        self.max_request_bytes = min(self.max_request_bytes * 2, limit)
        self._lowered_at = None if self.max_request_bytes >= limit else self._clock()
        self.metrics.max_request_bytes.set(self.max_request_bytes)
        log.info(
            "trying _bulk requests of up to %d bytes again (BOTWATCH_BULK_MAX_BYTES: %d)",
            self.max_request_bytes,
            limit,
        )

    def _apply(self, chunk: list[BulkItem], payload: bytes, round_: _Round) -> None:
        """Record each item's outcome from a ``_bulk`` answer; items to retry go to the
        round's ``retry``, with their reason."""
        written: Counter[str] = Counter()
        results, position = round_.results, round_.position
        if payload.startswith(_NO_ERRORS):  # the usual answer: every item written
            for item in chunk:
                results[position[id(item)]] = WRITTEN
            written.update(item.family for item in chunk)
            for family, n in written.items():
                self.metrics.docs_written.labels(family=family).inc(n)
            return
        for item, result in zip(chunk, classify(orjson.loads(payload), chunk), strict=True):
            if result.outcome is Outcome.RETRY:
                round_.retry.append(item)
                round_.reasons[result.reason] += 1
                continue
            results[position[id(item)]] = result
            if result.outcome is Outcome.WRITTEN:
                written[item.family] += 1
            elif result.outcome is Outcome.DUPLICATE:
                self.metrics.duplicates.inc()
            else:
                self.metrics.rejected.labels(family=item.family).inc()
        for family, n in written.items():  # per family, not per document
            self.metrics.docs_written.labels(family=family).inc(n)

    def _refused(self, token: object, round_: _Round) -> None:
        """A round of a write ended with items to send again: keep why, for ``health()``."""
        refusal = self._refusals.get(token)
        if refusal is None:
            refusal = self._refusals[token] = _Refusal(datetime.now(UTC))
        refusal.rounds += 1
        refusal.documents = len(round_.retry)
        refusal.reason = round_.reasons.most_common(1)[0][0]
        self._count_refused()
        if refusal.rounds == self.config.breaker_failures:  # once per write that stays stuck
            log.warning("%s", self._refused_reason([refusal]))

    def _write_ended(self, token: object, completed: bool) -> None:
        """``completed``: every item written or rejected for good (else the write stopped)."""
        refusal = self._refusals.pop(token, None)
        if refusal is None:
            return
        self._count_refused()
        if completed and refusal.rounds >= self.config.breaker_failures:
            waited = (datetime.now(UTC) - refusal.since).total_seconds()
            log.warning(
                "OpenSearch at %s took the %d refused document(s) after %.0f s",
                self._shown_url,
                refusal.documents,
                waited,
            )

    def _count_refused(self) -> None:
        self.metrics.refused_documents.set(sum(r.documents for r in self._refusals.values()))

    def _refused_for_long(self) -> list[_Refusal]:
        threshold = self.config.breaker_failures
        return [r for r in self._refusals.values() if r.rounds >= threshold]

    def _refused_reason(self, refusals: list[_Refusal]) -> str:
        first = min(refusals, key=lambda r: r.since)
        documents = sum(r.documents for r in refusals)
        return (
            f"OpenSearch at {self._shown_url} refuses writes: {documents} document(s) "
            f"retried since {first.since.isoformat(timespec='seconds')}, last answer "
            f"{first.reason}. {refusal_hint(first.reason)}They wait in Kafka and are written "
            "once OpenSearch takes them"
        )

    def _log_rejected(self, what: str, items: list[BulkItem], results: list[ItemResult]) -> None:
        reasons = [r.reason for r in results if r.outcome is Outcome.REJECTED]
        if reasons:
            log.warning(
                "OpenSearch rejected %d %s document(s) of %d; first: %s",
                len(reasons),
                what,
                len(items),
                reasons[0],
            )

    async def _ensure_templates(self) -> None:
        if self._templates_done or not self._install_templates:
            return
        for name, template in template_bodies(self.config).items():
            await self._request("PUT", f"/_index_template/{name}", orjson.dumps(template), _JSON)
        await self._update_mappings()
        self._templates_done = True

    async def _update_mappings(self) -> None:
        """Best effort, one try each (``mapping_updates``): an old index that is read-only
        (a flood-stage block, a warm tier) must not hold every write back. One request per
        family pattern; where that fails (one index of it refusing fails the whole), today's
        index of the family alone, which is the one most documents go to."""
        session = self._session
        assert session is not None
        today = day_of_ms(int(time.time() * 1000))
        for family, (pattern, mapping) in mapping_updates(self.config).items():
            body = orjson.dumps(mapping)
            failed = await self._put_once(session, f"/{pattern}/_mapping", body)
            if failed is None:
                continue
            prefix = self.config.index_prefix
            names = [index_name(prefix, family, today)]
            if family == "events":  # its template covers the errors family too
                names.append(index_name(prefix, "events-errors", today))
            still = [
                f"{name}: {why}"
                for name in names
                if (why := await self._put_once(session, f"/{name}/_mapping", body)) is not None
            ]
            log.warning(
                "the indices %s could not all take the current fields (%s)%s: a document "
                "holding a field an index lacks is refused there (events: dead-lettered, "
                "stage sink). `botwatch setup` says which",
                pattern,
                failed,
                f"; nor could today's: {'; '.join(still)}" if still else "; today's index did",
            )

    async def _put_once(self, session: aiohttp.ClientSession, path: str, body: bytes) -> str | None:
        """PUT ``body`` once (no retry, no circuit); None when taken, else why not."""
        url = f"{self.url}{path}?{MAPPING_UPDATE_PARAMS}"
        try:
            async with session.put(url, data=body, headers=_JSON) as response:
                if response.status < 300:
                    return None
                return f"HTTP {response.status}: {(await response.text())[:300]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _request(self, method: str, path: str, data: bytes, headers: dict[str, str]) -> bytes:
        """The answer's body once OpenSearch accepted the request; retried while it fails
        for a transient reason, raises ``SinkRequestError`` for any other 4xx."""
        attempt = 0
        while True:
            if self._stopping.is_set() or self._session is None:
                raise SinkStoppedError(
                    f"OpenSearch sink stopped before a write to {self._shown_url} completed; "
                    "the batch stays uncommitted and will be redelivered"
                )
            probe = self._breaker.state is not State.CLOSED  # allowed, it is the one probe
            if not self._breaker.allow():
                self.metrics.breaker_state.set(int(self._breaker.state))
                await self._pause(min(max(self._breaker.wait_s(), 0.01), _POLL_S))
                continue
            started = time.perf_counter()
            self._last_request_at = self._clock()
            try:
                async with self._session.request(
                    method, self.url + path, data=data, headers=headers
                ) as response:
                    payload = await response.read()
                    status = response.status
            except _TRANSPORT_ERRORS as exc:
                error = _transport_error(exc)
            except BaseException:  # cancelled (a stop, a rebalance): no news of the node
                if probe:
                    self._breaker.abandon()
                raise
            else:
                self.metrics.bulk_latency.observe(time.perf_counter() - started)
                if status < 300:
                    self._succeeded()
                    return payload
                text = payload[:300].decode("utf-8", "replace")
                error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
                if status != 429 and status < 500:
                    self._succeeded()  # the node answered: it is up, the request is wrong
                    what = f"{method} {self._shown_url}{path}: {error}"
                    if status == 413:
                        raise RequestTooLargeError(what, len(data))
                    if status in (401, 403):
                        what += _CREDENTIALS_HINT
                    raise SinkRequestError(what)
            finally:
                self._last_request_at = self._clock()
            self._failed(error)
            self.metrics.retries.labels(scope="request").inc()
            await self._pause(self._backoff(attempt))
            attempt += 1

    async def ping(self) -> None:
        """Ask OpenSearch whether it answers, when no request went out for ``PING_IDLE_S``.

        Health comes from the requests: an idle sink (no events, or a worker just started)
        would otherwise report a node that is down as fine. A ping counts like a request
        (failures open the circuit; while it is open, a ping may be its one probe), and
        never retries: the next one is the retry.
        """
        session = self._session
        if session is None or self._clock() - self._last_request_at < PING_IDLE_S:
            return
        probe = self._breaker.state is not State.CLOSED
        if not self._breaker.allow():
            return
        self._last_request_at = self._clock()
        try:
            timeout = aiohttp.ClientTimeout(
                total=min(_PING_TIMEOUT_S, self.config.request_timeout_s)
            )
            async with session.get(self.url + "/", timeout=timeout) as response:
                await response.read()
                status = response.status
        except _TRANSPORT_ERRORS as exc:
            self._failed(_transport_error(exc))
            return
        except BaseException:
            if probe:
                self._breaker.abandon()
            raise
        finally:
            self._last_request_at = self._clock()
        if status == 429 or status >= 500:
            self._failed(f"HTTP {status}")
        else:  # it answered (a 401 or 403 too: the node is up)
            self._succeeded()

    def _succeeded(self) -> None:
        self._breaker.record_success()
        if self._opened_since is not None:
            log.warning(
                "OpenSearch at %s answers again: circuit closed after %.0f s open; the writes "
                "held meanwhile go out now",
                self._shown_url,
                (datetime.now(UTC) - self._opened_since).total_seconds(),
            )
            self._opened_since = None
        self._down_since = None
        self.metrics.breaker_state.set(int(State.CLOSED))

    def _failed(self, error: str) -> None:
        self._breaker.record_failure(error)
        if self._down_since is None:
            self._down_since = datetime.now(UTC)
        state = self._breaker.state
        if state is not State.CLOSED and self._opened_since is None:
            # Once per outage, not per retry: the log says when it began and when it ended.
            self._opened_since = datetime.now(UTC)
            log.warning(
                "OpenSearch at %s unreachable (%s): circuit open. Writes wait and are retried "
                "(nothing is dropped; the worker holds its batches and Kafka keeps the "
                "records); /ready answers 503 until it answers again",
                self._shown_url,
                error,
            )
        self.metrics.breaker_state.set(int(state))

    def _backoff(self, attempt: int) -> float:
        return backoff_s(attempt, self.config.retry_base_s, self.config.retry_cap_s, self._rand)

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless ``stop()`` comes first."""
        # Not ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation that
        # arrives as ``stop()`` does (CPython gh-86296).
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([stopped], timeout=seconds)
        finally:
            stopped.cancel()
