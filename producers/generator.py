"""Synthetic bot traffic and its exact ground truth: pure and deterministic for a seed, no I/O.

The load generator (`botwatch generate`) exists to check the pipeline end to end, so every
record it makes carries the facts a checker needs: what the stream worker must count for
each bot and 1-minute window, which records are late, and which are malformed and why.

Model:

- Record ``i`` of a run has the nominal event time ``start + i / rate``; a share
  ``malformed`` of records are malformed (see ``MALFORMED_KINDS``), the rest are valid events.
- Each valid event draws its level first: ``error``/``critical`` with the bot's error rate
  (the ``--error-rate``, or an incident's rate inside its span), so the error share is exact
  in expectation whatever the event turns out to be.
- Bots run jobs: ``started``, then log lines and ``retry`` events, then ``success`` or
  ``failure``. The outcome is drawn once per job with the failure rate, so the failure share of
  finished jobs matches it. A success never carries an error level: when the drawn level is
  an error, the job logs the error and finishes later. A failure drawn with a non-error level
  is logged at ``warning``.
- A share ``late`` of valid events are late: their timestamp is at least ``LATE_BEHIND_MS``
  behind the latest event time of their bot, so their window has surely closed. A bot can emit
  a late event only once its latest event is that far past the run start: earlier runs (and
  the first ``LATE_BEHIND_MS`` of every run) have no late events.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

from schemas import ERROR_LEVELS, LEVELS, MAX_JOB_ID_CHARS, MAX_MESSAGE_BYTES, MAX_META_BYTES
from schemas.jsonbytes import json_bytes
from schemas.rank import nearest_rank

WINDOW_MS: Final = 60_000
# Windows close when the partition watermark (max event time - 30 s) passes their end; an
# event 180 s behind its bot's latest one lands at least 120 s before the watermark.
LATE_BEHIND_MS: Final = 180_000
# How far further back than LATE_BEHIND_MS a late event may go (never before the run start).
LATE_SPREAD_MS: Final = 120_000
# Event-time rate used when records are sent unpaced with --rate 0.
UNPACED_EVENT_RATE: Final = 1000.0
PERCENTILES: Final = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))

# Non-error levels and their weights; error levels split error 85 % / critical 15 %.
_CALM_LEVELS: Final = ("debug", "info", "warning")
_CALM_CUMULATIVE: Final = (0.15, 0.85, 1.0)
_CRITICAL_SHARE: Final = 0.15
_ENVS: Final = ("prod", "prod", "prod", "staging", "dev")
# Job duration in ms: log-normal with median 1.5 s, long right tail.
_DURATION_MU: Final = math.log(1500.0)
_DURATION_SIGMA: Final = 0.9
_ATTEMPT_MU: Final = math.log(400.0)
_ATTEMPT_SIGMA: Final = 0.7
# Planned retries per job: 0 (75 %), 1 (15 %), 2 (7 %), 3 (3 %).
_RETRY_CUMULATIVE: Final = (0.75, 0.90, 0.97, 1.0)
_MAX_LOG_STEPS: Final = 6
_START_SHARE: Final = 0.45
_HEARTBEAT_SHARE: Final = 0.25

_TASKS: Final = (
    "invoice batch",
    "order export",
    "price crawl",
    "ledger sync",
    "report render",
    "inbox triage",
    "stock update",
    "backup upload",
)
_LOG_MESSAGES: Final = {
    "debug": ("cache hit for {task}", "polling queue for {task}", "token refreshed"),
    "info": ("processed {n} items of {task}", "fetched page {n} of {task}", "queue depth {n}"),
    "warning": ("slow response ({n} ms) during {task}", "rate limited, backing off {n} ms"),
    "error": ("{task} step failed", "could not reach upstream for {task}"),
    "critical": ("{task} aborted: data store unavailable", "disk full while writing {task}"),
}
_ERRORS: Final = (
    ("TimeoutError", "upstream did not answer within 30 s"),
    ("ConnectionError", "connection reset by peer"),
    ("ValueError", "unexpected column count in row"),
    ("PermissionError", "403 from document store"),
)
_STACK: Final = (
    'Traceback (most recent call last):\n  File "bot/run.py", line 42, in step\n'
    "    result = client.fetch(batch)\n{type}: {message}"
)


class GeneratorError(ValueError):
    """A generator parameter that cannot produce the requested traffic."""


@dataclass(frozen=True)
class Incident:
    """Inside [start_s, end_s) seconds of event time from the run start, ``bot_id`` errs more."""

    bot_id: str
    start_s: float
    end_s: float
    error_rate: float

    @classmethod
    def parse(cls, spec: str) -> Incident:
        """``BOT:START:END:ERROR_RATE``; the bot id may itself contain colons."""
        parts = spec.rsplit(":", 3)
        if len(parts) != 4 or not parts[0]:
            raise GeneratorError(f"incident {spec!r} is not BOT:START:END:ERROR_RATE")
        try:
            start_s, end_s, rate = float(parts[1]), float(parts[2]), float(parts[3])
        except ValueError:
            raise GeneratorError(
                f"incident {spec!r}: START, END and ERROR_RATE must be numbers"
            ) from None
        incident = cls(parts[0], start_s, end_s, rate)
        incident.check()
        return incident

    def check(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise GeneratorError(f"incident on {self.bot_id}: need 0 <= START < END seconds")
        if not 0.0 <= self.error_rate <= 1.0:
            raise GeneratorError(f"incident on {self.bot_id}: ERROR_RATE must be within 0..1")

    def as_dict(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "error_rate": self.error_rate,
        }


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that determines a run's records: same config, same bytes."""

    start_ms: int
    bots: int = 10
    rate: float = 1000.0
    error_rate: float = 0.02
    failure_rate: float = 0.05
    malformed: float = 0.0
    late: float = 0.0
    incidents: tuple[Incident, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bots < 1:
            raise GeneratorError("--bots must be at least 1")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise GeneratorError("the event-time rate must be a positive number")
        for name in ("error_rate", "failure_rate", "malformed", "late"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise GeneratorError(f"{name.replace('_', '-')} must be within 0..1, got {value}")
        known = set(bot_ids(self.bots))
        for incident in self.incidents:
            incident.check()
            if incident.bot_id not in known:
                last = bot_ids(self.bots)[-1]
                raise GeneratorError(
                    f"incident names {incident.bot_id!r}, but the bots are "
                    f"{bot_ids(1)[0]} .. {last}"
                )

    def timestamp_of(self, index: int) -> int:
        """Nominal event time (epoch ms) of record ``index``."""
        return self.start_ms + int(index * 1000 / self.rate)


def bot_ids(count: int) -> list[str]:
    """``bot-000``, ``bot-001``, ... (wider when there are more than 1000 bots)."""
    width = max(3, len(str(count - 1)))
    return [f"bot-{i:0{width}d}" for i in range(count)]


def format_timestamp(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``, the form every botwatch producer writes."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def window_start(ms: int) -> int:
    """Start (epoch ms) of the 60 s tumbling window, aligned to the epoch, holding ``ms``."""
    return ms - ms % WINDOW_MS


# --- malformed records ------------------------------------------------------------------------


class MalformedKind(NamedTuple):
    """How a malformed record is broken, and what the decoder must say about it."""

    stage: str  # "decode" or "validate"
    path: str  # field path the error names; "" for the whole record


MALFORMED_KINDS: Final[dict[str, MalformedKind]] = {
    "broken_json": MalformedKind("decode", ""),
    "truncated_json": MalformedKind("decode", ""),
    "empty_value": MalformedKind("decode", ""),
    "not_utf8": MalformedKind("decode", ""),
    "json_array": MalformedKind("decode", ""),
    "json_string": MalformedKind("decode", ""),
    "json_null": MalformedKind("decode", ""),
    "missing_event_id": MalformedKind("validate", "event_id"),
    "missing_timestamp": MalformedKind("validate", "timestamp"),
    "missing_bot_id": MalformedKind("validate", "bot_id"),
    "missing_level": MalformedKind("validate", "level"),
    "missing_message": MalformedKind("validate", "message"),
    "missing_schema_version": MalformedKind("validate", "schema_version"),
    "unknown_field": MalformedKind("validate", "customer"),
    "event_id_int": MalformedKind("validate", "event_id"),
    "event_id_empty": MalformedKind("validate", "event_id"),
    "duration_string": MalformedKind("validate", "duration_ms"),
    "duration_negative": MalformedKind("validate", "duration_ms"),
    "duration_bool": MalformedKind("validate", "duration_ms"),
    "retry_count_float": MalformedKind("validate", "retry_count"),
    "retry_count_negative": MalformedKind("validate", "retry_count"),
    "level_int": MalformedKind("validate", "level"),
    "level_unknown": MalformedKind("validate", "level"),
    "level_upper_case": MalformedKind("validate", "level"),
    "status_unknown": MalformedKind("validate", "status"),
    "status_null": MalformedKind("validate", "status"),
    "message_int": MalformedKind("validate", "message"),
    "message_oversize": MalformedKind("validate", "message"),
    "meta_list": MalformedKind("validate", "meta"),
    "meta_oversize": MalformedKind("validate", "meta"),
    "timestamp_no_offset": MalformedKind("validate", "timestamp"),
    "timestamp_month_13": MalformedKind("validate", "timestamp"),
    "timestamp_not_a_date": MalformedKind("validate", "timestamp"),
    "timestamp_epoch_number": MalformedKind("validate", "timestamp"),
    "bot_id_space": MalformedKind("validate", "bot_id"),
    "bot_id_too_long": MalformedKind("validate", "bot_id"),
    "job_id_too_long": MalformedKind("validate", "job_id"),
    "schema_version_2": MalformedKind("validate", "schema_version"),
    "schema_version_string": MalformedKind("validate", "schema_version"),
    "error_extra_key": MalformedKind("validate", "error.code"),
    "error_not_object": MalformedKind("validate", "error"),
    "error_type_int": MalformedKind("validate", "error.type"),
    "host_int": MalformedKind("validate", "host"),
}
_MALFORMED_NAMES: Final = tuple(MALFORMED_KINDS)


def malformed_value(kind: str, base: dict[str, Any]) -> bytes:
    """The record value of ``kind``, made from a valid event ``base`` (which is not modified)."""
    if kind == "broken_json":
        return orjson.dumps(base).replace(b'":', b'"', 1)
    if kind == "truncated_json":
        raw = orjson.dumps(base)
        return raw[: len(raw) // 2]
    if kind == "empty_value":
        return b""
    if kind == "not_utf8":
        return orjson.dumps(base).replace(b'"message":"', b'"message":"\xff\xfe', 1)
    if kind == "json_array":
        return orjson.dumps([base])
    if kind == "json_string":
        return orjson.dumps(base["message"])
    if kind == "json_null":
        return b"null"
    event = dict(base)
    if kind.startswith("missing_"):
        del event[kind.removeprefix("missing_")]
    elif kind == "unknown_field":
        event["customer"] = "ACME"
    else:
        field, value = _BREAKS[kind](event)
        event[field] = value
    return json_bytes(event)


def _oversize_meta(event: dict[str, Any]) -> tuple[str, Any]:
    return "meta", {"rows": ["x" * 1000] * (MAX_META_BYTES // 1000 + 1)}


_BREAKS: Final[dict[str, Any]] = {
    "event_id_int": lambda e: ("event_id", 12345),
    "event_id_empty": lambda e: ("event_id", ""),
    "duration_string": lambda e: ("duration_ms", "120"),
    "duration_negative": lambda e: ("duration_ms", -5),
    "duration_bool": lambda e: ("duration_ms", True),
    "retry_count_float": lambda e: ("retry_count", 1.5),
    "retry_count_negative": lambda e: ("retry_count", -1),
    "level_int": lambda e: ("level", 3),
    "level_unknown": lambda e: ("level", "fatal"),
    "level_upper_case": lambda e: ("level", "ERROR"),
    "status_unknown": lambda e: ("status", "done"),
    "status_null": lambda e: ("status", None),
    "message_int": lambda e: ("message", 404),
    "message_oversize": lambda e: ("message", "x" * (MAX_MESSAGE_BYTES + 1)),
    "meta_list": lambda e: ("meta", ["a", "b"]),
    "meta_oversize": _oversize_meta,
    "timestamp_no_offset": lambda e: ("timestamp", e["timestamp"][:-1]),
    "timestamp_month_13": lambda e: ("timestamp", "2026-13-01T10:00:00.000Z"),
    "timestamp_not_a_date": lambda e: ("timestamp", "yesterday at noon"),
    "timestamp_epoch_number": lambda e: ("timestamp", 1795000000000),
    "bot_id_space": lambda e: ("bot_id", "invoice bot!"),
    "bot_id_too_long": lambda e: ("bot_id", "b" * 129),
    "job_id_too_long": lambda e: ("job_id", "j" * (MAX_JOB_ID_CHARS + 1)),
    "schema_version_2": lambda e: ("schema_version", 2),
    "schema_version_string": lambda e: ("schema_version", "1"),
    "error_extra_key": lambda e: (
        "error",
        {"type": "TimeoutError", "message": "slow", "stack": "", "code": 504},
    ),
    "error_not_object": lambda e: ("error", "TimeoutError: slow"),
    "error_type_int": lambda e: ("error", {"type": 504, "message": "slow"}),
    "host_int": lambda e: ("host", 7),
}


# --- records ----------------------------------------------------------------------------------

# Record kinds besides the malformed ones.
VALID: Final = "valid"
LATE: Final = "late"


class Record(NamedTuple):
    """One Kafka record and the facts the truth needs about it.

    ``kind`` is VALID, LATE or a key of MALFORMED_KINDS; the event fields are those of the
    valid event (for a malformed record: of the event it was broken from).
    """

    seq: int
    bot: int
    key: bytes
    value: bytes
    kind: str
    event_id: str
    timestamp_ms: int
    level: str
    status: str | None
    duration_ms: int | None


class _Job:
    """A bot's running job: its plan is drawn at start, the events then play it out."""

    __slots__ = ("duration_ms", "fails", "job_id", "retries_done", "retries_left", "steps_left")

    def __init__(
        self, job_id: str, fails: bool, steps: int, retries: int, duration_ms: int
    ) -> None:
        self.job_id = job_id
        self.fails = fails
        self.steps_left = steps
        self.retries_left = retries
        self.retries_done = 0
        self.duration_ms = duration_ms


class Generator:
    """The records of one run, in order; ``take(n)`` returns the next ``n``.

    All randomness comes from one ``random.Random(seed)``, so a config always yields the
    same records. Cost matters (the load generator must reach 50,000 records/s in one
    process): the hot path builds one small dict per event and serializes it with orjson.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.index = 0
        self._rng = random.Random(config.seed)  # noqa: S311 - reproducible test data
        rng = self._rng
        self.bot_ids = bot_ids(config.bots)
        self.keys = [bot.encode() for bot in self.bot_ids]
        self.envs = [_ENVS[int(rng.random() * len(_ENVS))] for _ in self.bot_ids]
        self.hosts = [f"{env}-worker-{i % 7 + 1:02d}" for i, env in enumerate(self.envs)]
        self.tasks = [_TASKS[int(rng.random() * len(_TASKS))] for _ in self.bot_ids]
        # Some bots are chattier than others (weights 0.5 .. 2.0).
        total = 0.0
        self._cumulative: list[float] = []
        for _ in self.bot_ids:
            total += 0.5 + 1.5 * rng.random()
            self._cumulative.append(total)
        self._total_weight = total
        self._last_ms = [config.start_ms - 1] * config.bots
        self._jobs: list[_Job | None] = [None] * config.bots
        self._job_seq = [0] * config.bots
        self._incidents: dict[int, list[tuple[int, int, float]]] = {}
        for incident in config.incidents:
            spans = self._incidents.setdefault(self.bot_ids.index(incident.bot_id), [])
            spans.append(
                (
                    config.start_ms + round(incident.start_s * 1000),
                    config.start_ms + round(incident.end_s * 1000),
                    incident.error_rate,
                )
            )
        # The event id: UUIDv7 layout, time from the event, random bits from seed and index.
        # Multiplying the index by an odd constant modulo 2**62 is a bijection: ids never repeat.
        mix = random.Random(f"event-id:{config.seed}")  # noqa: S311 - reproducible ids
        self._id_version_rand_a = f"7{mix.getrandbits(12):03x}"
        self._id_offset = mix.getrandbits(62)
        self._second = -1
        self._second_text = ""

    # The hot path --------------------------------------------------------------------------

    def take(self, count: int) -> list[Record]:
        """The next ``count`` records of the run."""
        cfg = self.config
        rng = self._rng
        random_ = rng.random
        malformed = cfg.malformed
        late = cfg.late
        error_rate = cfg.error_rate
        incidents = self._incidents
        cumulative = self._cumulative
        total_weight = self._total_weight
        last_ms = self._last_ms
        start_ms = cfg.start_ms
        rate_ = cfg.rate
        late_floor = start_ms + LATE_BEHIND_MS
        out: list[Record] = []
        append = out.append
        first = self.index
        for index in range(first, first + count):
            ts = start_ms + int(index * 1000 / rate_)
            bot = bisect.bisect_right(cumulative, random_() * total_weight)
            if bot >= len(cumulative):  # guards the float edge random() * total == total
                bot = len(cumulative) - 1
            rate = error_rate
            spans = incidents.get(bot)
            if spans is not None:
                for span_start, span_end, span_rate in spans:
                    if span_start <= ts < span_end:
                        rate = span_rate
                        break
            r = random_()
            if r < rate:
                level = "critical" if random_() < _CRITICAL_SHARE else "error"
            else:
                level = _CALM_LEVELS[bisect.bisect_right(_CALM_CUMULATIVE, random_())]
            if random_() < malformed:
                append(self._malformed(index, bot, ts, level))
                continue
            if late and random_() < late and last_ms[bot] >= late_floor:
                append(self._late(index, bot, level))
                continue
            append(self._event(index, bot, ts, level))
            last_ms[bot] = ts
        self.index = first + count
        return out

    def _timestamp(self, ms: int) -> str:
        second, millis = divmod(ms, 1000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f"{self._second_text}{millis:03d}Z"

    def _event_id(self, index: int, ms: int) -> str:
        # Field by field rather than one 128-bit integer: this runs once per record.
        rand_b = (index * 0x2545F4914F6CDD1D + self._id_offset) & 0x3FFFFFFFFFFFFFFF
        high = f"{ms & 0xFFFFFFFFFFFF:012x}"
        low = f"{0x8000000000000000 | rand_b:016x}"
        return f"{high[:8]}-{high[8:]}-{self._id_version_rand_a}-{low[:4]}-{low[4:]}"

    def _event(self, index: int, bot: int, ts: int, level: str) -> Record:
        """A valid, on-time event: advances the bot's job."""
        event_id = self._event_id(index, ts)
        event: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": self._timestamp(ts),
            "bot_id": self.bot_ids[bot],
            "level": level,
            "message": "",
            "schema_version": 1,
            "host": self.hosts[bot],
            "env": self.envs[bot],
        }
        job = self._jobs[bot]
        if job is None:
            status = self._idle(bot, level, event)
            duration = None
        else:
            status, duration = self._job_step(bot, job, level, event)
            level = event["level"]
        if level in ERROR_LEVELS:
            event["error"] = self._error()
        if status is not None:
            event["status"] = status
        if duration is not None:
            event["duration_ms"] = duration
        return Record(
            index,
            bot,
            self.keys[bot],
            json_bytes(event),
            VALID,
            event_id,
            ts,
            level,
            status,
            duration,
        )

    def _idle(self, bot: int, level: str, event: dict[str, Any]) -> str | None:
        """An event of a bot with no job running: a job starts, a heartbeat or a log line."""
        task = self.tasks[bot]
        u = self._rng.random()
        if level in ERROR_LEVELS or u >= _START_SHARE + _HEARTBEAT_SHARE:
            event["message"] = self._log_line(level, task)
            return None
        if u < _START_SHARE:
            job = self._start_job(bot)
            event["job_id"] = job.job_id
            event["message"] = f"{task} started"
            return "started"
        event["message"] = "alive"
        event["meta"] = {"queue_depth": int(self._rng.random() * 50)}
        return "heartbeat"

    def _job_step(
        self, bot: int, job: _Job, level: str, event: dict[str, Any]
    ) -> tuple[str | None, int | None]:
        """The next event of a running job: a log line, a retry, or its end (status, duration)."""
        task = self.tasks[bot]
        event["job_id"] = job.job_id
        if job.steps_left > 0:
            job.steps_left -= 1
            if self._rng.random() * (job.steps_left + 1) < job.retries_left:
                job.retries_left -= 1
                job.retries_done += 1
                event["retry_count"] = job.retries_done
                event["message"] = f"{task}: attempt {job.retries_done} failed, retrying"
                return "retry", round(self._rng.lognormvariate(_ATTEMPT_MU, _ATTEMPT_SIGMA))
            event["message"] = self._log_line(level, task)
            return None, None
        if not job.fails and level in ERROR_LEVELS:
            # A success is never an error: log the error, finish on a later event.
            event["message"] = self._log_line(level, task)
            return None, None
        self._jobs[bot] = None
        if job.retries_done:
            event["retry_count"] = job.retries_done
        if job.fails:
            if level not in ERROR_LEVELS:
                event["level"] = "warning"
            event["message"] = f"{task} failed after {job.retries_done} retries"
            return "failure", job.duration_ms
        event["message"] = f"{task} done"
        event["meta"] = {"items": int(self._rng.random() * 500)}
        return "success", job.duration_ms

    def _start_job(self, bot: int) -> _Job:
        rng = self._rng
        seq = self._job_seq[bot] = self._job_seq[bot] + 1
        retries = bisect.bisect_right(_RETRY_CUMULATIVE, rng.random())
        steps = max(retries, int(rng.random() * (_MAX_LOG_STEPS + 1)))
        job = _Job(
            f"{self.bot_ids[bot]}-job-{seq:06d}",
            rng.random() < self.config.failure_rate,
            steps,
            retries,
            round(rng.lognormvariate(_DURATION_MU, _DURATION_SIGMA)),
        )
        self._jobs[bot] = job
        return job

    def _log_line(self, level: str, task: str) -> str:
        templates = _LOG_MESSAGES[level]
        template = templates[int(self._rng.random() * len(templates))]
        return template.format(task=task, n=int(self._rng.random() * 1000))

    def _error(self) -> dict[str, str]:
        kind, message = _ERRORS[int(self._rng.random() * len(_ERRORS))]
        return {
            "type": kind,
            "message": message,
            "stack": _STACK.format(type=kind, message=message),
        }

    def _late(self, index: int, bot: int, level: str) -> Record:
        """A valid event of ``bot`` at least LATE_BEHIND_MS behind its latest event."""
        newest = self._last_ms[bot] - LATE_BEHIND_MS
        oldest = max(self.config.start_ms, newest - LATE_SPREAD_MS)
        ts = oldest + int(self._rng.random() * (newest - oldest + 1))
        ts = min(ts, newest)
        event_id = self._event_id(index, ts)
        task = self.tasks[bot]
        event: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": format_timestamp(ts),
            "bot_id": self.bot_ids[bot],
            "level": level,
            "message": f"(buffered) {self._log_line(level, task)}",
            "schema_version": 1,
            "host": self.hosts[bot],
            "env": self.envs[bot],
            "meta": {"buffered": True},
        }
        if level in ERROR_LEVELS:
            event["error"] = self._error()
        return Record(
            index,
            bot,
            self.keys[bot],
            json_bytes(event),
            LATE,
            event_id,
            ts,
            level,
            None,
            None,
        )

    def _malformed(self, index: int, bot: int, ts: int, level: str) -> Record:
        """A record of a random malformed kind, keyed by a real bot so it lands on a partition."""
        kind = _MALFORMED_NAMES[int(self._rng.random() * len(_MALFORMED_NAMES))]
        event_id = self._event_id(index, ts)
        base: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": self._timestamp(ts),
            "bot_id": self.bot_ids[bot],
            "job_id": f"{self.bot_ids[bot]}-job-broken",
            "level": level,
            "message": f"{self.tasks[bot]} progress",
            "status": "retry",
            "duration_ms": 250,
            "retry_count": 1,
            "schema_version": 1,
            "host": self.hosts[bot],
            "env": self.envs[bot],
        }
        return Record(
            index,
            bot,
            self.keys[bot],
            malformed_value(kind, base),
            kind,
            event_id,
            ts,
            level,
            None,
            None,
        )


# --- ground truth -----------------------------------------------------------------------------


class _Window:
    __slots__ = ("count", "durations", "errors", "failures", "levels", "retries", "successes")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.successes = 0
        self.failures = 0
        self.retries = 0
        self.levels: dict[str, int] = dict.fromkeys(LEVELS, 0)
        self.durations: list[int] = []


def duration_summary(values: Sequence[float]) -> dict[str, Any]:
    """count, sum, min, max, mean and the p50/p95/p99 at the nearest rank.

    ``schemas.rank.nearest_rank``, as the stream's sketch, so the truth and the stream agree
    on which sample a percentile names.
    """
    n = len(values)
    if n == 0:
        summary: dict[str, Any] = {"count": 0, "sum": 0, "min": None, "max": None, "mean": None}
        summary.update({name: None for name, _ in PERCENTILES})
        return summary
    ordered = sorted(values)
    total = sum(ordered)
    summary = {
        "count": n,
        "sum": total,
        "min": ordered[0],
        "max": ordered[-1],
        "mean": total / n,
    }
    for name, q in PERCENTILES:
        summary[name] = ordered[nearest_rank(q, n)]
    return summary


class Truth:
    """What was delivered, counted exactly: fed one record at a time once Kafka acked it."""

    def __init__(self, config: GeneratorConfig, generator: Generator) -> None:
        self.config = config
        self.bot_ids = generator.bot_ids
        self.envs = generator.envs
        self.hosts = generator.hosts
        self.records = 0
        self.valid = 0
        self.late = [0] * config.bots
        self.event_ids: list[str] = []
        self.malformed: list[dict[str, Any]] = []
        self._windows: list[dict[int, _Window]] = [{} for _ in range(config.bots)]

    def add(self, record: Record, partition: int, offset: int) -> None:
        """Count ``record``, which Kafka stored at ``partition``/``offset``."""
        self.records += 1
        kind = record.kind
        if kind == VALID:
            self.valid += 1
            self.event_ids.append(record.event_id)
            windows = self._windows[record.bot]
            start = record.timestamp_ms - record.timestamp_ms % WINDOW_MS
            window = windows.get(start)
            if window is None:
                window = windows[start] = _Window()
            window.count += 1
            level = record.level
            window.levels[level] += 1
            if level in ERROR_LEVELS:
                window.errors += 1
            status = record.status
            if status is not None:
                if status == "success":
                    window.successes += 1
                elif status == "failure":
                    window.failures += 1
                elif status == "retry":
                    window.retries += 1
            if record.duration_ms is not None:
                window.durations.append(record.duration_ms)
        elif kind == LATE:
            self.valid += 1
            self.late[record.bot] += 1
            self.event_ids.append(record.event_id)
        else:
            stage, path = MALFORMED_KINDS[kind]
            self.malformed.append(
                {
                    "kind": kind,
                    "stage": stage,
                    "path": path,
                    "key": record.key.decode(),
                    "partition": partition,
                    "offset": offset,
                }
            )

    def windows(self) -> dict[str, dict[str, dict[str, Any]]]:
        """bot_id -> window_start (RFC 3339) -> the window's exact statistics."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for bot, windows in enumerate(self._windows):
            if not windows:
                continue
            rows: dict[str, dict[str, Any]] = {}
            for start in sorted(windows):
                w = windows[start]
                finished = w.successes + w.failures
                rows[_window_text(start)] = {
                    "window_start": _window_text(start),
                    "window_end": _window_text(start + WINDOW_MS),
                    "window_size_s": WINDOW_MS // 1000,
                    "count": w.count,
                    "errors": w.errors,
                    "successes": w.successes,
                    "failures": w.failures,
                    "retries": w.retries,
                    "error_rate": w.errors / w.count,
                    "failure_rate": w.failures / finished if finished else 0.0,
                    "levels": dict(w.levels),
                    "duration_ms": duration_summary(w.durations),
                }
            out[self.bot_ids[bot]] = rows
        return out

    def as_dict(
        self, *, topic: str | None = None, complete: bool = True, planned: int | None = None
    ) -> dict[str, Any]:
        """The truth file's content (see ``botwatch generate --help`` for its keys)."""
        cfg = self.config
        late_total = sum(self.late)
        return {
            "truth_version": 1,
            "complete": complete,
            "params": {
                "seed": cfg.seed,
                "start": format_timestamp(cfg.start_ms),
                "rate": cfg.rate,
                "bots": cfg.bots,
                "records_planned": planned,
                "error_rate": cfg.error_rate,
                "failure_rate": cfg.failure_rate,
                "malformed": cfg.malformed,
                "late": cfg.late,
                "incidents": [incident.as_dict() for incident in cfg.incidents],
                "topic": topic,
                "window_size_s": WINDOW_MS // 1000,
                "late_behind_s": LATE_BEHIND_MS // 1000,
            },
            "counts": {
                "records": self.records,
                "valid": self.valid,
                "on_time": self.valid - late_total,
                "late": late_total,
                "malformed": len(self.malformed),
            },
            "bots": {
                bot_id: {"env": self.envs[i], "host": self.hosts[i]}
                for i, bot_id in enumerate(self.bot_ids)
            },
            "late_per_bot": {
                bot_id: self.late[i] for i, bot_id in enumerate(self.bot_ids) if self.late[i]
            },
            "windows": self.windows(),
            "event_ids": self.event_ids,
            "malformed": self.malformed,
        }


def _window_text(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
