"""``AlertEngine``: rules evaluated over closed window records, events and ticks.

What the worker calls, all in event time (milliseconds since the epoch):

- ``on_window(record)`` for every closed 1-minute window record, oldest first per bot:
  threshold and burn-rate rules are evaluated at the window's end. A record not newer than
  the bot's last one is a replay and changes nothing.
- ``on_event(bot_id, env, error_type, ts_ms)`` for every event: a bot's last-seen time (for
  absence; an event resolves its bot's absence alert), its env (for ``env`` selectors) and
  its error types (for ``new_error_type``).
- ``tick(now_ms)`` every few seconds with the partition's watermark: absence, repeat
  notifications, silences that ended, ``new_error_type`` alerts that aged out, and threshold
  and burn-rate alerts of bots that went quiet (evaluated as if their missing windows were
  empty, so a silent bot's alert resolves instead of firing forever).

Each returns the alert records to publish. State is per bot (``BotAlerts``), so the worker can
store it in its bot-keyed table: ``take_dirty`` names the bots changed since the last call,
``bot_to_dict`` and ``load_bot`` move one bot's state; silences are global and move through
``Silences.to_list`` / ``from_list``. Alerts of rules no longer in the rules file are dropped
when a bot is loaded.

Threshold spans: counts are summed over the span and rates recomputed from the sums. Window
records carry percentiles, not sketches, so a span's p95 (p99) is the largest p95 (p99) of its
windows: an upper bound of the true value (if every window has 95% of its samples at or below
M, so has their union), which errs towards alerting.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from streams.alerts.buckets import JobCounts, horizons
from streams.alerts.lifecycle import FIRING, Alert, AlertBook, Silence, Silences
from streams.alerts.rules import (
    OPS,
    BurnRateSpec,
    NewErrorTypeSpec,
    Rule,
    ThresholdSpec,
)
from streams.windows import WINDOW_MS, WINDOW_S

DAY_MS: Final = 86_400_000
MAX_ERROR_TYPES: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
# Window tuple: start, count, errors, successes, failures, retries, durations, p95, p99.
Window = tuple[int, int, int, int, int, int, int, float, float]
_WINDOW_KINDS: Final = frozenset({"threshold", "burn_rate"})


class BotRules(NamedTuple):
    """The rules that select one bot, by kind (derived, never stored)."""

    env: str | None
    threshold: tuple[Rule, ...]
    absence: tuple[Rule, ...]
    burn_rate: tuple[Rule, ...]
    new_error_type: tuple[Rule, ...]


class BotAlerts:
    """Everything the rules remember about one bot, and its pending and firing alerts."""

    __slots__ = (
        "book",
        "bot_id",
        "env",
        "error_types",
        "first_seen_ms",
        "heard_ms",
        "jobs",
        "last_eval_ms",
        "last_seen_ms",
        "last_window_ms",
        "matched",
        "orphans",
        "pruned_ms",
        "windows",
    )

    def __init__(self, bot_id: str) -> None:
        self.bot_id = bot_id
        self.env: str | None = None
        self.first_seen_ms: int | None = None
        self.last_seen_ms: int | None = None
        # Kafka's timestamp of its newest record: when it was sent (see ``tick``).
        self.heard_ms: int | None = None
        self.last_window_ms: int | None = None
        self.last_eval_ms: int | None = None
        self.windows: deque[Window] | None = None
        self.jobs: JobCounts | None = None
        self.error_types: dict[str, int] = {}
        self.pruned_ms = 0
        self.book = AlertBook()
        self.matched: BotRules | None = None
        # Firing alerts of rules no longer in the rules file: kept in the state until their
        # resolution is out (a crash before that must not lose them).
        self.orphans: list[Alert] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"bot_id": self.bot_id}
        for key, value in (
            ("env", self.env),
            ("first_seen", self.first_seen_ms),
            ("last_seen", self.last_seen_ms),
            ("heard", self.heard_ms),
            ("last_window", self.last_window_ms),
            ("last_eval", self.last_eval_ms),
        ):
            if value is not None:
                data[key] = value
        if self.windows:
            data["windows"] = [list(w) for w in self.windows]
        if self.jobs is not None:
            data["jobs"] = self.jobs.to_dict()
        if self.error_types:
            data["error_types"] = dict(self.error_types)
            data["pruned"] = self.pruned_ms
        if self.book or self.orphans:
            data["alerts"] = self.book.to_list() + [a.to_dict() for a in self.orphans or ()]
        return data


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def start_ms(text: str) -> int:
    """Milliseconds of an RFC 3339 time such as a window record's ``window_start``."""
    return (datetime.fromisoformat(text) - _EPOCH) // _MS


class AlertEngine:
    """Evaluates ``rules`` (names must be unique) and keeps the state of every bot."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.rules_by_name = {rule.name: rule for rule in self.rules}
        if len(self.rules_by_name) != len(self.rules):
            raise ValueError("rule names must be unique")
        by_kind = {kind: [r for r in self.rules if r.kind == kind] for kind in _KIND_ORDER}
        self._has_absence = bool(by_kind["absence"])
        # A count rule that holds at 0 (``count < 10``): a bot without alerts that went quiet
        # must be evaluated on the tick too, or it would never fire.
        self._holds_at_zero = any(
            isinstance(r.spec, ThresholdSpec)
            and r.spec.stat in _COUNTS
            and OPS[r.spec.op](0.0, r.spec.threshold)
            for r in by_kind["threshold"]
        )
        self._max_span = max(
            (r.spec.span for r in by_kind["threshold"] if isinstance(r.spec, ThresholdSpec)),
            default=0,
        )
        spans = [
            span
            for r in by_kind["burn_rate"]
            if isinstance(r.spec, BurnRateSpec)
            for w in r.spec.windows
            for span in (w.long_ms, w.short_ms)
        ]
        self._horizons = horizons(spans)
        self._max_type_age_ms = max(
            (
                r.spec.days * DAY_MS
                for r in by_kind["new_error_type"]
                if isinstance(r.spec, NewErrorTypeSpec)
            ),
            default=0,
        )
        self._bots: dict[str, BotAlerts] = {}
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        # Bots restored with firing alerts of rules no longer in the rules file.
        self._orphaned: set[str] = set()
        # Alerts of rules no longer configured resolved by ``tick``, by rule: for the caller
        # to report (and clear).
        self.removed_rules_resolved: Counter[str] = Counter()
        self.silence_list = Silences()

    # -- inputs -------------------------------------------------------------------------

    def on_window(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Evaluate threshold and burn-rate rules at the end of a closed window record."""
        size_s = record.get("window_size_s", WINDOW_S)
        if size_s != WINDOW_S:
            raise ValueError(f"alert rules work on {WINDOW_S}s windows, got {size_s}s")
        bot_id = record["bot_id"]
        start = start_ms(record["window_start"])
        bot = self._bot(bot_id)
        if bot.last_window_ms is not None and start <= bot.last_window_ms:
            return []
        bot.last_window_ms = start
        self._dirty.add(bot_id)
        rules = self._rules_for(bot)
        if rules.threshold:
            durations = record["duration_ms"]
            samples = durations["count"]
            if bot.windows is None:
                bot.windows = deque(maxlen=self._max_span)
            bot.windows.append(
                (
                    start,
                    record["count"],
                    record["errors"],
                    record["successes"],
                    record["failures"],
                    record["retries"],
                    samples,
                    float(durations["p95"]) if samples else 0.0,
                    float(durations["p99"]) if samples else 0.0,
                )
            )
        if rules.burn_rate:
            if bot.jobs is None:
                bot.jobs = JobCounts(self._horizons)
            bot.jobs.add(start, record["successes"], record["failures"])
        if not rules.threshold and not rules.burn_rate:
            return []
        return self._evaluate(bot, rules, start + WINDOW_MS)

    def on_event(
        self,
        bot_id: str,
        env: str | None,
        error_type: str | None,
        ts_ms: int,
        heard_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Note one event (``heard_ms``: its record's Kafka timestamp); returns resolved
        absence and new-error-type notifications."""
        bot = self._bots.get(bot_id)
        if bot is None:
            bot = self._bot(bot_id)
        if env is not None and env != bot.env:
            bot.env = env
            bot.matched = None
        if bot.first_seen_ms is None:
            bot.first_seen_ms = ts_ms
        last = bot.last_seen_ms
        if last is None or ts_ms > last:
            bot.last_seen_ms = ts_ms
        _note_heard(bot, heard_ms)
        self._dirty.add(bot_id)
        gap_s = (ts_ms - last) / 1000 if last is not None else 0.0
        out = self._back(bot, ts_ms, gap_s)
        if error_type is not None:
            rules = self._rules_for(bot).new_error_type
            if rules:
                out += self._new_error(bot, rules, error_type, ts_ms)
        self._track(bot)
        return out

    def on_heard(self, bot_id: str, heard_ms: int) -> list[dict[str, Any]]:
        """A record of a known bot sent at ``heard_ms`` whose event time cannot be used (over
        an hour ahead, say): the bot is sending. Its absence alert resolves, and the tick
        measures its silence from then; its event times stay as they were. A bot never seen
        with a usable time is not known to absence: nothing to do."""
        bot = self._bots.get(bot_id)
        if bot is None or bot.last_seen_ms is None:
            return []
        _note_heard(bot, heard_ms)
        self._dirty.add(bot_id)
        out = self._back(bot, heard_ms)
        self._track(bot)
        return out

    def _back(self, bot: BotAlerts, at_ms: int, gap_s: float | None = None) -> list[dict[str, Any]]:
        """Resolve the bot's absence alerts: it sent something (at ``at_ms``)."""
        out: list[dict[str, Any]] = []
        book = bot.book
        if book.alerts:
            for rule in self._rules_for(bot).absence:
                if (rule.name, "") in book.alerts:
                    out += book.resolve(rule, "", at_ms, gap_s)
        return out

    def tick(
        self, now_ms: int, settled_ms: int | None = None, *, wall_clock: bool = False
    ) -> list[dict[str, Any]]:
        """Absence, repeats, ended silences, aged-out alerts and quiet bots, at ``now_ms``.

        ``settled_ms`` (default ``now_ms``): the time up to which every window is closed,
        i.e. the partition's watermark. Quiet bots are evaluated only up to it, so a window
        still open (within the allowed lateness) is not taken for an empty one.

        ``wall_clock``: ``now_ms`` is the wall clock (a caught-up partition), not the
        partition's newest event time. A bot's silence is then measured from its last
        record's Kafka timestamp (when its producer sent it, at most the worker's clock):
        event times that lag (a shipper sending in batches, a spool sent late, events stamped
        when they began) made a bot that sends every few seconds flap between down and back,
        and event times ahead made a bot gone look alive for that much longer.
        """
        out: list[dict[str, Any]] = []
        orphaned, self._orphaned = self._orphaned, set()
        for bot_id in sorted(orphaned):  # their rule was removed: resolved, then forgotten
            bot = self._bots.get(bot_id)
            if bot is not None and bot.orphans:
                out += (alert.orphan_record(now_ms) for alert in bot.orphans)
                self.removed_rules_resolved.update(alert.rule for alert in bot.orphans)
                bot.orphans = None
                self._dirty.add(bot_id)
        silences = self.silence_list
        silences.expire(now_ms)
        silenced = silences.is_silenced
        if self._has_absence:
            for bot in self._bots.values():
                last = bot.last_seen_ms
                if last is None:
                    continue
                if wall_clock and bot.heard_ms is not None:
                    last = bot.heard_ms
                gap = now_ms - last
                for rule in self._rules_for(bot).absence:
                    active = gap >= rule.for_ms
                    # In event time (a partition behind), a short gap says only that the
                    # partition's newest event time is stale (its records so far were
                    # invalid, or other bots' older ones): the bot sent nothing. Only its
                    # own record (``_back``) or the wall clock may resolve its absence.
                    if active or (wall_clock and (rule.name, "") in bot.book.alerts):
                        before = _signature(bot)
                        out += bot.book.observe(
                            rule,
                            bot.bot_id,
                            active,
                            value=gap / 1000,
                            threshold=rule.for_ms / 1000,
                            window=rule.window,
                            now_ms=now_ms,
                            silenced=silenced,
                            since_ms=last + rule.for_ms,
                        )
                        if _signature(bot) != before:
                            self._dirty.add(bot.bot_id)
                self._track(bot)
        settled = now_ms if settled_ms is None else min(settled_ms, now_ms)
        minute_end = settled - settled % WINDOW_MS
        for bot_id in sorted(self._active):
            bot = self._bots[bot_id]
            before = _signature(bot)
            rules = self._rules_for(bot)
            if (
                bot.last_eval_ms is not None
                and minute_end > bot.last_eval_ms
                and any(self._kind(alert) in _WINDOW_KINDS for alert in bot.book)
            ):
                out += self._evaluate(bot, rules, minute_end)
            for alert in bot.book:
                rule = self.rules_by_name[alert.rule]
                spec = rule.spec
                aged = isinstance(spec, NewErrorTypeSpec) and (
                    now_ms - alert.since_ms >= spec.resolve_after_ms
                )
                # A rule whose selector no longer takes the bot (its env changed) never
                # evaluates it again: its alert stayed firing for good, paged every
                # repeat_interval.
                if aged or rule not in getattr(rules, rule.kind):
                    out += bot.book.resolve(rule, alert.key, now_ms)
                    continue
                out += AlertBook.notify_due(rule, alert, now_ms, silenced)
            if _signature(bot) != before:
                self._dirty.add(bot_id)
            self._track(bot)
        if self._holds_at_zero:
            out += self._evaluate_quiet(minute_end)
        return out

    # -- silences -----------------------------------------------------------------------

    def silence(
        self, rule: str, bot: str, *, until_ms: int, reason: str, created_by: str, now_ms: int
    ) -> Silence:
        """Suppress notifications of ``rule`` for ``bot`` (both may be globs) until ``until_ms``."""
        return self.silence_list.add(
            rule, bot, until_ms=until_ms, reason=reason, created_by=created_by, now_ms=now_ms
        )

    def unsilence(self, silence_id: str) -> Silence | None:
        """End a silence now; alerts it held back are notified on the next tick."""
        return self.silence_list.remove(silence_id)

    def silences(self) -> list[Silence]:
        return list(self.silence_list)

    # -- views and state ----------------------------------------------------------------

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts as alert records, plus ``silenced`` and ``held`` (firing
        only by ``keep_firing_for``: its condition has cleared) for ``alerts list``."""
        out = []
        for bot_id in sorted(self._active):
            for alert in self._bots[bot_id].book:
                rule = self.rules_by_name[alert.rule]
                item = alert.record(rule, alert.state)
                # Silences are expired on tick, so any one still held covers the alert now.
                item["silenced"] = self.silence_list.covers(rule.name, bot_id)
                item["held"] = alert.clear_ms is not None
                out.append(item)
        return out

    def notified_firing(self) -> list[dict[str, Any]]:
        """The firing alerts whose firing was notified, as alert records: what a receiver
        that re-sends firing alerts (Alertmanager) holds while they fire."""
        out = []
        for bot_id in sorted(self._active):
            for alert in self._bots[bot_id].book:
                if alert.state == FIRING and alert.sent_ms is not None:
                    out.append(alert.record(self.rules_by_name[alert.rule], FIRING))
        return out

    def bot_ids(self) -> list[str]:
        return sorted(self._bots)

    def knows(self, bot_id: str) -> bool:
        return bot_id in self._bots

    def last_seen(self, bot_id: str) -> int | None:
        """Event time of the bot's newest event; None for a bot not known (or not yet seen)."""
        bot = self._bots.get(bot_id)
        return None if bot is None else bot.last_seen_ms

    def last_heard(self, bot_id: str) -> int | None:
        """Kafka's timestamp of the bot's newest record (when it was sent, whatever its event
        times say); None for a bot not known, or heard of only before this was kept."""
        bot = self._bots.get(bot_id)
        return None if bot is None else bot.heard_ms

    def retire(self, bot_id: str, now_ms: int, reason: str) -> list[dict[str, Any]]:
        """Forget a bot gone for good: its alerts resolve, each resolution carrying ``reason``
        as the annotation ``retired``, and its state goes (an absence alert would otherwise
        fire for a decommissioned bot forever)."""
        bot = self._bots.get(bot_id)
        if bot is None:
            return []
        out: list[dict[str, Any]] = []
        for alert in bot.book:
            for record in bot.book.resolve(self.rules_by_name[alert.rule], alert.key, now_ms):
                record["annotations"]["retired"] = reason
                out.append(record)
        self.drop_bot(bot_id)
        return out

    def take_dirty(self) -> set[str]:
        """Bots whose state changed since the last call: the table entries to write."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def bot_to_dict(self, bot_id: str) -> dict[str, Any] | None:
        bot = self._bots.get(bot_id)
        return None if bot is None else bot.to_dict()

    def load_bot(self, data: Mapping[str, Any]) -> None:
        """Restore one bot's state (as ``bot_to_dict`` gave it), replacing what is held."""
        bot = BotAlerts(str(data["bot_id"]))
        bot.env = data.get("env")
        bot.first_seen_ms = _opt_int(data.get("first_seen"))
        bot.last_seen_ms = _opt_int(data.get("last_seen"))
        bot.heard_ms = _opt_int(data.get("heard"))
        bot.last_window_ms = _opt_int(data.get("last_window"))
        bot.last_eval_ms = _opt_int(data.get("last_eval"))
        windows = data.get("windows")
        if windows and self._max_span:
            bot.windows = deque(
                (
                    (*(int(v) for v in w[:7]), float(w[7]), float(w[8]))  # type: ignore[misc]
                    for w in windows
                ),
                maxlen=self._max_span,
            )
        jobs = data.get("jobs")
        if jobs is not None and self._horizons:
            bot.jobs = JobCounts.from_dict(self._horizons, jobs)
        bot.error_types = {str(k): int(v) for k, v in data.get("error_types", {}).items()}
        bot.pruned_ms = int(data.get("pruned", 0))
        book = AlertBook.from_list(bot.bot_id, data.get("alerts", []))
        for slot in [s for s in book.alerts if s[0] not in self.rules_by_name]:
            alert = book.alerts.pop(slot)
            if alert.state == FIRING and alert.sent_ms is not None:
                bot.orphans = [*(bot.orphans or ()), alert]  # resolved by the next tick
                self._orphaned.add(bot.bot_id)
        bot.book = book
        self._bots[bot.bot_id] = bot
        self._track(bot)

    def drop_bot(self, bot_id: str) -> None:
        """Forget a bot (its partition moved to another worker, or it was retired)."""
        self._bots.pop(bot_id, None)
        self._active.discard(bot_id)
        self._dirty.discard(bot_id)
        self._orphaned.discard(bot_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bots": [bot.to_dict() for _, bot in sorted(self._bots.items())],
            "silences": self.silence_list.to_list(),
        }

    @classmethod
    def from_dict(cls, rules: Sequence[Rule], data: Mapping[str, Any]) -> AlertEngine:
        engine = cls(rules)
        for bot in data.get("bots", []):
            engine.load_bot(bot)
        engine.silence_list = Silences.from_list(data.get("silences", []))
        engine._dirty.clear()
        return engine

    # -- evaluation ---------------------------------------------------------------------

    def _bot(self, bot_id: str) -> BotAlerts:
        bot = self._bots.get(bot_id)
        if bot is None:
            bot = self._bots[bot_id] = BotAlerts(bot_id)
        return bot

    def _rules_for(self, bot: BotAlerts) -> BotRules:
        matched = bot.matched
        if matched is None:
            chosen = [r for r in self.rules if r.selector.matches(bot.bot_id, bot.env)]
            matched = bot.matched = BotRules(
                bot.env, *(tuple(r for r in chosen if r.kind == kind) for kind in _KIND_ORDER)
            )
        return matched

    def _kind(self, alert: Alert) -> str:
        return self.rules_by_name[alert.rule].kind

    def _track(self, bot: BotAlerts) -> None:
        if bot.book:
            self._active.add(bot.bot_id)
        else:
            self._active.discard(bot.bot_id)

    def _evaluate_quiet(self, minute_end: int) -> list[dict[str, Any]]:
        """Bots without alerts whose windows up to ``minute_end`` were not evaluated: quiet
        ones (their windows empty), for the rules that hold at 0."""
        out: list[dict[str, Any]] = []
        for bot_id, bot in self._bots.items():
            last = bot.last_eval_ms
            if bot_id in self._active or last is None or minute_end <= last:
                continue
            # Its evaluation time alone is not written: every bot once a minute would load
            # the changelog, and a restart only evaluates the minute again.
            before = _signature(bot)[1]
            out += self._evaluate(bot, self._rules_for(bot), minute_end)
            if _signature(bot)[1] != before:
                self._dirty.add(bot_id)
            self._track(bot)
        return out

    def _evaluate(self, bot: BotAlerts, rules: BotRules, end_ms: int) -> list[dict[str, Any]]:
        """Threshold and burn-rate rules of one bot over the windows ending at ``end_ms``."""
        bot.last_eval_ms = end_ms
        out: list[dict[str, Any]] = []
        silenced = self.silence_list.is_silenced
        book = bot.book
        alerts = book.alerts
        spans: dict[int, Window] = {}
        for rule in rules.threshold:
            spec = rule.spec
            assert isinstance(spec, ThresholdSpec)
            agg = spans.get(spec.span)
            if agg is None:
                agg = spans[spec.span] = _aggregate(bot.windows, end_ms - spec.span * WINDOW_MS)
            value, n = _stat(spec.stat, agg)
            # No event: a count is 0 (``count < 10`` holds), a rate or a percentile is unknown.
            known = n > 0 or spec.stat in _COUNTS
            active = known and n >= spec.min_events and OPS[spec.op](value, spec.threshold)
            if active or (rule.name, "") in alerts:
                out += book.observe(
                    rule,
                    bot.bot_id,
                    active,
                    value=value,
                    threshold=spec.threshold,
                    window=rule.window,
                    now_ms=end_ms,
                    silenced=silenced,
                )
        jobs = bot.jobs
        if jobs is not None:
            sums: dict[int, tuple[int, int]] = {}
            for rule in rules.burn_rate:
                spec = rule.spec
                assert isinstance(spec, BurnRateSpec)
                active, value, factor, label = _burn(spec, jobs, end_ms, sums)
                if active or (rule.name, "") in alerts:
                    out += book.observe(
                        rule,
                        bot.bot_id,
                        active,
                        value=value,
                        threshold=factor,
                        window=label,
                        now_ms=end_ms,
                        silenced=silenced,
                    )
        self._track(bot)
        return out

    def _new_error(
        self, bot: BotAlerts, rules: tuple[Rule, ...], error_type: str, ts_ms: int
    ) -> list[dict[str, Any]]:
        types = bot.error_types
        previous = types.get(error_type)
        if previous is None or ts_ms > previous:
            types[error_type] = ts_ms
        if ts_ms - bot.pruned_ms >= DAY_MS:
            cutoff = ts_ms - self._max_type_age_ms
            for name in [name for name, seen in types.items() if seen < cutoff]:
                del types[name]
            bot.pruned_ms = ts_ms
        if len(types) > MAX_ERROR_TYPES:
            del types[min(types, key=types.__getitem__)]
        out: list[dict[str, Any]] = []
        book = bot.book
        first_seen = bot.first_seen_ms if bot.first_seen_ms is not None else ts_ms
        for rule in rules:
            spec = rule.spec
            assert isinstance(spec, NewErrorTypeSpec)
            alert = book.get(rule.name, error_type)
            if alert is not None:
                alert.value += 1
                continue
            if previous is not None and ts_ms - previous <= spec.days * DAY_MS:
                continue
            if ts_ms - first_seen < spec.learning_ms:
                continue
            out += book.observe(
                rule,
                bot.bot_id,
                True,
                value=1.0,
                threshold=0.0,
                window=rule.window,
                now_ms=ts_ms,
                silenced=self.silence_list.is_silenced,
                key=error_type,
            )
        return out


_KIND_ORDER: Final = ("threshold", "absence", "burn_rate", "new_error_type")


def _signature(bot: BotAlerts) -> tuple[Any, ...]:
    """What a tick may change that must be stored: an alert's state and notification times.

    A tick only refreshes the current value of an alert otherwise (an absence's growing
    gap); that is recomputed after a restart, so writing it every tick would only load the
    changelog.
    """
    return (
        bot.last_eval_ms,
        tuple((a.rule, a.key, a.state, a.fired_ms, a.sent_ms, a.clear_ms) for a in bot.book),
    )


def _aggregate(windows: deque[Window] | None, low_ms: int) -> Window:
    """Sums over the windows starting at or after ``low_ms``; max of their percentiles."""
    count = errors = successes = failures = retries = samples = 0
    p95 = p99 = 0.0
    if windows:
        for w in reversed(windows):
            if w[0] < low_ms:
                break
            count += w[1]
            errors += w[2]
            successes += w[3]
            failures += w[4]
            retries += w[5]
            if w[6]:
                samples += w[6]
                p95 = max(p95, w[7])
                p99 = max(p99, w[8])
    return (low_ms, count, errors, successes, failures, retries, samples, p95, p99)


def _note_heard(bot: BotAlerts, heard_ms: int | None) -> None:
    """Keep the newest Kafka timestamp heard of ``bot``."""
    if heard_ms is not None and (bot.heard_ms is None or heard_ms > bot.heard_ms):
        bot.heard_ms = heard_ms


# Stats that are counts of events: 0 when there were none.
_COUNTS: Final = frozenset({"count", "errors", "failures", "retries"})


def _stat(stat: str, agg: Window) -> tuple[float, int]:
    """(value, how many events it rests on) of ``stat`` over an aggregated span."""
    _, count, errors, successes, failures, retries, samples, p95, p99 = agg
    if stat == "error_rate":
        return (errors / count if count else 0.0), count
    if stat == "failure_rate":
        finished = successes + failures
        return (failures / finished if finished else 0.0), finished
    if stat == "p95_duration_ms":
        return p95, samples
    if stat == "p99_duration_ms":
        return p99, samples
    if stat == "count":
        return float(count), count
    if stat == "errors":
        return float(errors), count
    if stat == "failures":
        return float(failures), count
    if stat == "retries":
        return float(retries), count
    raise ValueError(f"unknown stat {stat!r}")


def _burn(
    spec: BurnRateSpec, jobs: JobCounts, end_ms: int, sums: dict[int, tuple[int, int]]
) -> tuple[bool, float, float, str]:
    """(active, burn rate, factor, window label) of the first pair above its factor, else
    of the first pair."""
    budget = 1.0 - spec.objective
    first: tuple[bool, float, float, str] | None = None
    for window in spec.windows:
        rates = []
        finished_long = 0
        for span in (window.long_ms, window.short_ms):
            counts = sums.get(span)
            if counts is None:
                counts = sums[span] = jobs.sums(end_ms, span)
            successes, failures = counts
            finished = successes + failures
            if span == window.long_ms:
                finished_long = finished
            rates.append(failures / finished / budget if finished else 0.0)
        value = min(rates)
        active = finished_long >= spec.min_events and value > window.factor
        result = (active, value, window.factor, window.label)
        if active:
            return result
        if first is None:
            first = result
    assert first is not None
    return first
