"""The worker's alert stage: one ``AlertEngine`` per owned partition, its state in the table.

Why one engine per partition: a partition's bots move between workers together, so their
alert state is loaded and dropped with the partition; and each partition has its own clock.
A partition that is caught up is judged by the wall clock (a bot that stopped sending is down
now, not when some other bot's event says so); a partition with a backlog is judged in its own
event time, so reading an hour of backlog after an outage does not declare every bot down.

Silences are global: one ``Silences`` object is shared by every engine and kept up to date
from the silences topic by the worker.

Each bot's alert state is one table entry (``a|<partition>|<bot>``) written with the batch
that changed it, after the alert records were published: a replayed batch rebuilds the same
records from the same state, and a restarted worker neither re-notifies what it already
notified nor forgets to resolve it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from schemas.jsonbytes import json_bytes
from streams.alerts import AlertEngine, Rule, Silences

log = logging.getLogger(__name__)
_SCRUBBED_MAX = 4096


class AlertTable(Protocol):
    """The changelog-backed table, addressed per source partition, with a prefix scan."""

    def scan(self, partition: int, prefix: str) -> Iterable[tuple[str, bytes]]: ...


class Notify(Protocol):
    """Where alert notifications go beyond the topic and the index (Alertmanager, ...)."""

    def submit(self, alert: dict[str, Any]) -> None:
        """Queue one notification; must never wait."""
        ...


class Receivers(Notify, Protocol):
    """``Notify`` with a lifecycle: the worker starts and stops it, ``/status`` shows it."""

    def restore(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Firing alerts notified before (by this process or another owner of their
        partition): a receiver that re-sends firing alerts takes them up; no notification."""
        ...

    def withdraw(self, fingerprints: Iterable[str]) -> None:
        """Alerts whose partition another worker owns now: no more re-sends from here."""
        ...

    def refresh(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Firing alerts notified before, as they are now: what a re-send carries."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> list[tuple[bool, str]]: ...


def alert_key(partition: int, bot_id: str) -> str:
    return f"a|{partition}|{bot_id}"


def _prefix(partition: int) -> str:
    return f"a|{partition}|"


class AlertStage:
    """Alert engines of the owned partitions, loaded from and saved to the table."""

    def __init__(
        self,
        rules: Sequence[Rule],
        table: AlertTable,
        silences: Silences,
        receivers: Receivers | None = None,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        """``scrub``: applied to every error type before an engine sees it. An error type
        becomes a label, annotations and part of an alert's identity, and reaches receivers
        (often third parties) and ``alerts list``, not only the redacted index: a secret in
        it (``AuthError token=...``) goes here, and a type that differs only by its secret
        is one type, not a new one each time."""
        self.rules = tuple(rules)
        self.scrub = scrub
        # Error types are few and repeat: each is scrubbed once (at most _SCRUBBED_MAX kept).
        self._scrubbed_types: dict[str, str] = {}
        self.table = table
        self.silences = silences
        # Told which notified alerts fire when a partition's engine is loaded (a restart,
        # a rebalance) and when it goes: Alertmanager resolves an alert nobody re-sends.
        self.receivers = receivers
        self._engines: dict[int, AlertEngine] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def engine(self, partition: int) -> AlertEngine:
        """The partition's engine, restored from the table on first use."""
        engine = self._engines.get(partition)
        if engine is None:
            engine = AlertEngine(self.rules)
            engine.silence_list = self.silences
            for _, raw in self.table.scan(partition, _prefix(partition)):
                engine.load_bot(orjson.loads(raw))
            engine.take_dirty()
            self._engines[partition] = engine
            if self.receivers is not None:
                self.receivers.restore(engine.notified_firing())
        return engine

    def refresh_receivers(self) -> None:
        """Hand the receivers the notified firing alerts with their current values."""
        if self.receivers is not None:
            for engine in self._engines.values():
                self.receivers.refresh(engine.notified_firing())

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            engine = self._engines.pop(partition, None)
            if engine is not None and self.receivers is not None:
                self.receivers.withdraw(a["fingerprint"] for a in engine.notified_firing())

    def observe(
        self,
        partition: int,
        last_seen: dict[str, int],
        envs: dict[str, str],
        errors: Sequence[tuple[str, str, int]],
        heard: Mapping[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """A batch's events of one partition, summarised: newest time per bot, envs, errors,
        and the Kafka timestamp of each bot's last record (``heard``).

        One ``on_event`` per bot and batch (with its newest event time) instead of one per
        event: absence only needs the newest, and ``errors`` carries every typed error.
        """
        engine = self.engine(partition)
        heard = heard or {}
        out: list[dict[str, Any]] = []
        for bot_id, error_type, ts in errors:
            out += engine.on_event(bot_id, envs.get(bot_id), self._scrubbed(error_type), ts)
        for bot_id, ts in last_seen.items():
            out += engine.on_event(bot_id, envs.get(bot_id), None, ts, heard.get(bot_id))
        return out

    def _scrubbed(self, error_type: str) -> str:
        if self.scrub is None:
            return error_type
        found = self._scrubbed_types.get(error_type)
        if found is None:
            if len(self._scrubbed_types) >= _SCRUBBED_MAX:
                self._scrubbed_types.clear()
            found = self._scrubbed_types[error_type] = self.scrub(error_type)
        return found

    def heard(self, partition: int, bot_id: str, heard_ms: int) -> list[dict[str, Any]]:
        """A record of ``bot_id`` sent at ``heard_ms`` whose event could not be windowed."""
        return self.engine(partition).on_heard(bot_id, heard_ms)

    def on_windows(self, partition: int, windows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        engine = self.engine(partition)
        out: list[dict[str, Any]] = []
        for window in windows:
            out += engine.on_window(window)
        return out

    def tick(
        self, partition: int, now_ms: int, settled_ms: int, wall_clock: bool = True
    ) -> list[dict[str, Any]]:
        engine = self.engine(partition)
        records = engine.tick(now_ms, settled_ms, wall_clock=wall_clock)
        removed = engine.removed_rules_resolved
        if removed:
            for rule, count in sorted(removed.items()):
                log.warning(
                    "the rule %s is no longer in the rules file: %d of its firing alert(s) of "
                    "partition %d resolve, and their receivers are told",
                    rule,
                    count,
                    partition,
                )
            removed.clear()
        return records

    def dirty_entries(self, partition: int) -> list[tuple[int, str, bytes]]:
        """(partition, key, value) of bots whose alert state changed, serialized now."""
        engine = self._engines.get(partition)
        if engine is None:
            return []
        entries: list[tuple[int, str, bytes]] = []
        for bot_id in sorted(engine.take_dirty()):
            data = engine.bot_to_dict(bot_id)
            if data is not None:
                entries.append((partition, alert_key(partition, bot_id), json_bytes(data)))
        return entries

    def retire(
        self, partition: int, bot_id: str, now_ms: int, reason: str
    ) -> tuple[list[dict[str, Any]], list[tuple[int, str, bytes | None]]]:
        """``AlertEngine.retire``: the resolutions, and the table entry that deletes the bot's
        (none when the engine did not know the bot)."""
        engine = self.engine(partition)
        if not engine.knows(bot_id):
            return [], []
        records = engine.retire(bot_id, now_ms, reason)
        return records, [(partition, alert_key(partition, bot_id), None)]

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts of every owned partition (for ``alerts list``)."""
        out: list[dict[str, Any]] = []
        for _, engine in sorted(self._engines.items()):
            out += engine.active()
        return out

    def partitions(self) -> list[int]:
        return sorted(self._engines)
