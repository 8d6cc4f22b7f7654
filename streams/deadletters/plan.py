"""Replay planning, without I/O: where a dead letter goes, with which headers, or why not;
the replay's identity and its checkpoint; the rate limit.

A replayed record is the original key (an event dead-lettered because its key was not its
bot_id is keyed by its bot_id instead: ``replay_key``), value and own headers, plus
``botwatch.dlq.first_failed_at`` (kept), ``botwatch.dlq.replay_count`` (incremented) and
``botwatch.dlq.replay.source`` (the dead letter it came from, ``topic:partition:offset``)
and ``botwatch.dlq.replay.origin`` (the record that failed, its stage and replay count: two
dead letters with one origin are one failure written twice, and only one is sent); a
re-keyed event also carries ``botwatch.dlq.replay.rekeyed``.
The worker keeps the first two when the record fails again and drops the third, so the next
dead letter carries the count forward: a record replayed ``max_replays`` times is not sent
again but quarantined (the loop guard).
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import orjson

from schemas.letter_bot import MISKEYED_PREFIX, miskeyed
from schemas.sink import parse_count
from streams import dlq
from streams.deadletters.records import BAD_REPLAY_COUNT, CUT_VALUE, Letter, origin_id

REPLAY_SOURCE: Final = "botwatch.dlq.replay.source"
REPLAY_ORIGIN: Final = "botwatch.dlq.replay.origin"
DEFAULT_MAX_REPLAYS: Final = 3
GROUP_PREFIX: Final = "botwatch-dlq-replay-"
_MISKEYED: Final = MISKEYED_PREFIX.encode()
_REKEYED_HEADER: Final = (dlq.REPLAY_REKEYED, b"1")


class PlanError(ValueError):
    """The replay cannot be done as asked; the message says what to change."""


class Action(Enum):
    SEND = "send"
    QUARANTINE = "quarantine"  # replayed max_replays times already
    SKIP = "skip"  # cannot be replayed (no original topic, a job_failure without --to, ...)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    target: str | None
    why: str = ""
    # Send it keyed by the event's bot_id, not its original key (see ``replay_key``).
    rekey: bool = False


CUT_SKIPPED: Final = (
    f"{CUT_VALUE}: the whole record is at its original topic, partition and offset "
    "(`dlq show` names them); send that one instead, or restore it in a `dlq export` "
    "file, delete its botwatch.dlq.truncated header there, and `dlq import` it"
)
JOB_FAILURE_SKIPPED: Final = (
    "a job_failure is an event the worker already processed and counted: replay it only "
    "with --to another topic than the one it was read from (one a retry job reads, say)"
)


def check_target(to: str | None, dlq_topic: str) -> None:
    if to is not None and to == dlq_topic:
        raise PlanError(
            f"--to {to!r} is the dead-letter topic itself: replaying into it would only "
            "copy the dead letters.\n  fix: name the topic the records should be processed "
            "from (e.g. the events topic)."
        )


def decide(letter: Letter, *, to: str | None, dlq_topic: str, max_replays: int) -> Decision:
    """What a replay does with ``letter``.

    The target is ``to`` or the original topic from the headers. A ``job_failure`` letter is
    a copy of an event the worker processed: it goes only where ``to`` says (a topic a retry
    job reads, say), never into its original topic, ``--to`` it or not: read there again, it
    was counted twice (a replayed event is told apart only from other replayed copies).
    """
    target = to or letter.original_topic
    if letter.stage == "?" or target is None:
        return Decision(Action.SKIP, None, "; ".join(letter.problems) or "no original topic")
    unknown = [p for p in letter.problems if p.startswith(BAD_REPLAY_COUNT)]
    if unknown:  # how often it was replayed is unknown: the loop guard cannot hold
        return Decision(Action.SKIP, None, f"{unknown[0]} (how often it was replayed)")
    if any(p.startswith(CUT_VALUE) for p in letter.problems):
        # Sent, the cut record failed again, and its new letter named the cut copy as the
        # original: nothing pointed at the whole record any more.
        return Decision(Action.SKIP, None, CUT_SKIPPED)
    rekey = miskeyed(letter.stage, letter.reason)
    return _decide(
        letter.stage, target, letter.original_topic, letter.replay_count, dlq_topic, max_replays,
        rekey,
    )  # fmt: skip


def replay_key(key: bytes | None, value: bytes | None) -> bytes | None:
    """The key a mis-keyed event is replayed with: its bot_id (the partition of its windows);
    ``key`` when the value holds no bot_id (edited since, say)."""
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return key
    bot_id = event.get("bot_id") if type(event) is dict else None
    return bot_id.encode() if type(bot_id) is str and bot_id else key


def _decide(  # noqa: PLR0917 - the parts of a decision
    stage: str,
    target: str,
    original: str | None,
    replay_count: int,
    dlq_topic: str,
    max_replays: int,
    rekey: bool,
) -> Decision:
    if target == dlq_topic:
        return Decision(Action.SKIP, None, "its original topic is the dead-letter topic")
    if stage == "job_failure" and target == original:
        return Decision(Action.SKIP, None, JOB_FAILURE_SKIPPED)
    if replay_count >= max_replays:
        return Decision(Action.QUARANTINE, target, f"replayed {replay_count} time(s) already")
    return _send(target, rekey)


@functools.lru_cache(maxsize=256)
def _send(target: str, rekey: bool) -> Decision:
    return Decision(Action.SEND, target, rekey=rekey)


def replay_headers(letter: Letter) -> list[tuple[str, bytes]]:
    """The headers of the replayed record (see the module docstring)."""
    headers = letter.own_headers
    origin = letter.origin
    rekey = miskeyed(letter.stage, letter.reason)
    _tail(headers, letter.first_failed_at, letter.replay_count, letter.source_id, letter.stage,
          origin=origin, rekey=rekey)  # fmt: skip
    return headers


def _tail(headers: list[tuple[str, bytes]], first_failed_at: str, replay_count: int,
          source: str, stage: str, *, origin: str | None, rekey: bool) -> None:  # fmt: skip
    """Append what a replay adds to a record's own headers (the module docstring)."""
    if first_failed_at:
        headers.append((dlq.FIRST_FAILED_AT, first_failed_at.encode()))
    headers.append((dlq.REPLAY_COUNT, str(replay_count + 1).encode()))
    headers.append((REPLAY_SOURCE, source.encode()))
    # The worker indexes a record replayed from stage sink without counting it again.
    headers.append((dlq.REPLAYED_STAGE, stage.encode()))
    if origin is not None:
        headers.append((REPLAY_ORIGIN, origin.encode()))
    if rekey:
        headers.append(_REKEYED_HEADER)


def triage(
    raw_headers: Iterable[tuple[str, bytes | None]] | None,
    source: str,
    *,
    to: str | None,
    dlq_topic: str,
    max_replays: int,
) -> tuple[Decision, list[tuple[str, bytes]]] | None:
    """``decide`` and ``replay_headers`` of a dead letter from its raw Kafka headers, without
    decoding a ``Letter`` (the replay's per-record path when no filter needs one): one loop
    over the headers, reading only stage, original topic, replay count and first failure.

    ``source``: the dead letter's ``topic:partition:offset``. The headers are those of the
    replayed record when the decision is to send, else empty. None for a letter that is not
    a botwatch dead letter or names no target: ``decode`` it for the reason.
    """
    own: list[tuple[str, bytes]] = []
    found: dict[str, bytes] = {}  # botwatch.dlq.* headers; the last of a name wins
    for name, value in raw_headers or ():
        if value.__class__ is not bytes:
            value = b"" if value is None else bytes(value)  # noqa: PLW2901 - as decode()
        if name.startswith(dlq.PREFIX):
            found[name] = value
        else:
            own.append((name, value))
    stage, original = found.get(dlq.STAGE), found.get(dlq.ORIGINAL_TOPIC)
    count, reason = found.get(dlq.REPLAY_COUNT), found.get(dlq.REASON)
    target = to or (original.decode("utf-8", "replace") if original else None)
    if stage is None or stage == b"?" or target is None:
        return None
    replay_count = 0
    if count:
        parsed = parse_count(count)
        if parsed is None:
            return None  # ``decide`` says why it is skipped
        replay_count = parsed
    if dlq.TRUNCATED in found:
        return Decision(Action.SKIP, None, CUT_SKIPPED), []
    stage_name = stage.decode("utf-8", "replace")
    rekey = stage == b"validate" and reason is not None and reason.startswith(_MISKEYED)
    original_topic = original.decode("utf-8", "replace") if original else None
    decision = _decide(
        stage_name, target, original_topic, replay_count, dlq_topic, max_replays, rekey
    )
    if decision.action is not Action.SEND:
        return decision, []
    first = found.get(dlq.FIRST_FAILED_AT)
    origin = origin_id(
        original.decode("utf-8", "replace") if original else None,
        _int_or_none(found.get(dlq.ORIGINAL_PARTITION)),
        _int_or_none(found.get(dlq.ORIGINAL_OFFSET)),
        stage_name,
        replay_count,
    )
    first_text = first.decode("utf-8", "replace") if first else ""
    _tail(own, first_text, replay_count, source, stage_name, origin=origin, rekey=rekey)
    return decision, own


def _int_or_none(raw: bytes | None) -> int | None:
    """A header's integer, read as a decoded ``Letter`` reads it."""
    if raw is None:
        return None
    try:
        return int(raw.decode("utf-8", "replace"))
    except ValueError:
        return None


def replay_group(dlq_topic: str, arguments: Mapping[str, Any]) -> str:
    """The consumer group that holds a replay's progress: derived from the dead-letter topic
    and the arguments that choose what is sent where, so the same command continues."""
    canonical = orjson.dumps(
        {"dlq": dlq_topic, **arguments}, option=orjson.OPT_SORT_KEYS, default=_sorted_list
    )
    return GROUP_PREFIX + hashlib.sha256(canonical).hexdigest()[:16]


def _sorted_list(value: Any) -> Any:
    if isinstance(value, frozenset | set | tuple):
        return sorted(value)
    raise TypeError(type(value).__name__)


# -- progress ---------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """What a replay commits with its offsets (as the offset commit's metadata).

    ``stop``: the dead-letter partition's end when the run began; a restarted run continues
    to it rather than to the new end (which may hold letters of records this run replayed).
    ``targets``: per target topic and partition, an offset below every record this run
    sends after the commit; a restart reads the targets from there to find what an
    interrupted run sent but had not committed, and does not send it again.
    ``times``: ``--since`` and ``--until`` as the run resolved them (epoch ms, None when not
    given); a restart selects with them, as ``--since 3m`` means another window at every run.
    """

    stop: int
    targets: dict[str, dict[int, int]] = field(default_factory=dict)
    times: tuple[int | None, int | None] | None = None

    def encode(self) -> str:
        targets = {t: [[p, o] for p, o in sorted(ps.items())] for t, ps in self.targets.items()}
        data: dict[str, Any] = {"v": 1, "stop": self.stop, "targets": targets}
        if self.times is not None:
            data["since"], data["until"] = self.times
        return orjson.dumps(data).decode()

    @classmethod
    def decode(cls, text: str | None) -> Checkpoint | None:
        if not text:
            return None
        try:
            data = orjson.loads(text)
            targets = {
                str(t): {int(p): int(o) for p, o in pairs} for t, pairs in data["targets"].items()
            }
            times = None
            if "since" in data or "until" in data:
                times = (_optional_int(data.get("since")), _optional_int(data.get("until")))
            return cls(int(data["stop"]), targets, times)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Window:
    """The offsets one run reads of one dead-letter partition: ``[start, stop)``."""

    start: int
    stop: int
    resumed: bool  # an interrupted run continues: what it sent uncommitted must be found


def window(
    committed: int | None, checkpoint: Checkpoint | None, low: int, high: int, *, restart: bool
) -> Window:
    """Where a run reads one partition (``low``/``high``: the log's start and end now).

    No commit (or ``restart``): everything there is. A commit short of its checkpoint's
    stop: the interrupted run, continued to its stop. A finished run: what came after it.
    """
    if restart or committed is None or committed < 0:
        return Window(low, high, False)
    start = max(committed, low)
    if checkpoint is not None and committed < checkpoint.stop:
        return Window(start, max(start, checkpoint.stop), True)
    return Window(start, max(start, high), False)


def resume_from(checkpoints: Mapping[int, Checkpoint | None]) -> dict[str, dict[int, int]]:
    """Per target partition, where to look for records sent after the last commit: the
    lowest offset any resumed partition's checkpoint recorded."""
    found: dict[str, dict[int, int]] = {}
    for checkpoint in checkpoints.values():
        if checkpoint is None:
            continue
        for topic, parts in checkpoint.targets.items():
            into = found.setdefault(topic, {})
            for partition, offset in parts.items():
                into[partition] = min(offset, into.get(partition, offset))
    return found


# -- rate limit -------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``reserve(n)`` takes n tokens
    and says how long to wait before using them (0 when they are there now).

    Reservations may drive the level below zero: the caller waits that debt off, so a
    steady sender is held to ``rate`` over any stretch longer than ``burst / rate``.
    """

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 20)
        self.clock = clock
        self.level = 0.0  # start empty: the first second is not a burst over the rate
        self.stamp = clock()

    def reserve(self, n: float = 1.0) -> float:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= n
        return 0.0 if self.level >= 0 else -self.level / self.rate


def parse_rate(text: str) -> float:
    """``"500"``, ``"500/s"``, ``"30000/m"`` -> records a second; ValueError otherwise."""
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip())
    value = float(number)
    if per is None or not value > 0 or not math.isfinite(value):
        raise ValueError(text)
    return value / per
