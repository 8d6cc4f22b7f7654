"""The alert lifecycle per fingerprint, silences, and the alert record of DESIGN.md.

An alert is identified by rule + bot (+ error type for ``new_error_type``) and moves
inactive -> pending -> firing -> inactive. Only two things are ever notified:

- **firing**: once when the alert starts firing, again only after ``repeat_interval`` while it
  keeps firing;
- **resolved**: when a firing alert clears, always, if its firing was notified. An alert that
  fired and cleared entirely inside a silence was never heard of, so nothing resolves it.

Silences suppress notifications, never state: a silenced alert still goes pending and firing.
When its silence ends (expiry or removal) while it fires un-notified, the next evaluation or
tick notifies it then. Inactive alerts are not stored, so the state of a healthy bot is empty.

Each alert remembers when its firing was last notified (``sent_ms``; ``None`` = not yet). That
is what a restarted worker restores: an alert already notified is not notified again before
its repeat interval, and it still resolves.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from streams.alerts.rules import Rule
from streams.windows import rfc3339

PENDING: Final = "pending"
FIRING: Final = "firing"
RESOLVED: Final = "resolved"

SilenceCheck = Callable[[str, str, int], bool]


def fingerprint(rule: str, bot_id: str, key: str = "") -> str:
    """Stable across processes and restarts: the first 16 hex digits of a sha256."""
    text = f"{rule}\x00{bot_id}\x00{key}" if key else f"{rule}\x00{bot_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fill_in(template: str, context: Mapping[str, Any]) -> str:
    """``template`` filled in from ``context``; on failure the template itself, saying why.

    The rules loader refuses what it can foresee, but a failure here would stop every alert
    of the partition (the record is made on each notification and listing), so the on-call
    person gets the text unfilled rather than nothing, as Prometheus does.
    """
    try:
        return template.format_map(context)
    except Exception as exc:
        return f"{template} [could not be filled in: {type(exc).__name__}: {exc}]"


class Alert:
    """One pending or firing alert. ``since_ms``: when its condition became true."""

    __slots__ = (
        "bot_id",
        "clear_ms",
        "fired_ms",
        "key",
        "labels",
        "rule",
        "sent_ms",
        "since_ms",
        "state",
        "threshold",
        "value",
        "window",
    )

    def __init__(
        self,
        rule: str,
        bot_id: str,
        key: str,
        *,
        since_ms: int,
        value: float,
        threshold: float,
        window: str,
    ) -> None:
        self.rule = rule
        self.bot_id = bot_id
        self.key = key
        self.state = PENDING
        self.since_ms = since_ms
        self.fired_ms: int | None = None
        self.sent_ms: int | None = None
        self.value = value
        self.threshold = threshold
        self.window = window
        # The labels its last firing notification carried (``severity`` among them): what
        # resolves it once its rule is gone from the rules file.
        self.labels: dict[str, str] | None = None
        # Since when a firing alert's condition no longer holds, while its rule's
        # ``keep_firing_for`` keeps it firing; None while it holds.
        self.clear_ms: int | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.bot_id, self.key)

    def record(self, rule: Rule, state: str, ends_ms: int | None = None) -> dict[str, Any]:
        """The alert record of DESIGN.md (``state`` may be ``pending`` for listings)."""
        labels = {"alertname": rule.name, "bot_id": self.bot_id, "severity": rule.severity}
        labels.update(rule.labels)
        if self.key:
            labels["error_type"] = self.key
        context = {
            "rule": rule.name,
            "bot_id": self.bot_id,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "severity": rule.severity,
            "error_type": self.key,
        }
        return {
            "rule": rule.name,
            "bot_id": self.bot_id,
            "severity": rule.severity,
            "state": state,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "starts_at": rfc3339(self.since_ms),
            "ends_at": None if ends_ms is None else rfc3339(ends_ms),
            "fingerprint": self.fingerprint,
            "labels": labels,
            "annotations": {k: fill_in(t, context) for k, t in rule.annotations.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule": self.rule,
            "state": self.state,
            "since": self.since_ms,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
        }
        if self.key:
            data["key"] = self.key
        if self.fired_ms is not None:
            data["fired"] = self.fired_ms
        if self.sent_ms is not None:
            data["sent"] = self.sent_ms
        if self.labels:
            data["labels"] = self.labels
        if self.clear_ms is not None:
            data["clear"] = self.clear_ms
        return data

    def orphan_record(self, now_ms: int) -> dict[str, Any]:
        """The resolved record of a firing alert whose rule is no longer in the rules file:
        made from what its firing notification carried, so receivers close that incident."""
        labels = self.labels or {"alertname": self.rule, "bot_id": self.bot_id}
        if self.key:
            labels = {**labels, "error_type": self.key}
        return {
            "rule": self.rule,
            "bot_id": self.bot_id,
            "severity": labels.get("severity") or "unknown",
            "state": RESOLVED,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "starts_at": rfc3339(self.since_ms),
            "ends_at": rfc3339(now_ms),
            "fingerprint": self.fingerprint,
            "labels": labels,
            "annotations": {
                "summary": f"resolved: the rule {self.rule} is no longer in the rules file"
            },
        }

    @classmethod
    def from_dict(cls, bot_id: str, data: Mapping[str, Any]) -> Alert:
        alert = cls(
            str(data["rule"]),
            bot_id,
            str(data.get("key", "")),
            since_ms=int(data["since"]),
            value=float(data["value"]),
            threshold=float(data["threshold"]),
            window=str(data["window"]),
        )
        state = data["state"]
        if state not in (PENDING, FIRING):
            raise ValueError(f"unknown alert state {state!r}")
        alert.state = state
        fired, sent = data.get("fired"), data.get("sent")
        alert.fired_ms = None if fired is None else int(fired)
        alert.sent_ms = None if sent is None else int(sent)
        labels = data.get("labels")
        if labels:
            alert.labels = {str(k): str(v) for k, v in labels.items()}
        clear = data.get("clear")
        alert.clear_ms = None if clear is None else int(clear)
        return alert

    def __repr__(self) -> str:
        return f"Alert({self.rule!r}, {self.bot_id!r}, {self.state}, value={self.value})"


class AlertBook:
    """The pending and firing alerts of one bot, keyed by (rule name, key)."""

    __slots__ = ("alerts",)

    def __init__(self) -> None:
        self.alerts: dict[tuple[str, str], Alert] = {}

    def __bool__(self) -> bool:
        return bool(self.alerts)

    def __iter__(self) -> Iterator[Alert]:
        return iter(list(self.alerts.values()))

    def get(self, rule: str, key: str = "") -> Alert | None:
        return self.alerts.get((rule, key))

    def observe(
        self,
        rule: Rule,
        bot_id: str,
        active: bool,
        *,
        value: float,
        threshold: float,
        window: str,
        now_ms: int,
        silenced: SilenceCheck,
        since_ms: int | None = None,
        key: str = "",
        hold: bool = True,
    ) -> list[dict[str, Any]]:
        """Apply one evaluation of ``rule`` at ``now_ms``; return the notifications it causes.

        ``hold``: False resolves a firing alert at once, whatever ``keep_firing_for`` says
        (``resolve``: a bot retired, an alert aged out)."""
        slot = (rule.name, key)
        alert = self.alerts.get(slot)
        if not active:
            if alert is None:
                return []
            if hold and alert.state == FIRING and rule.keep_firing_ms:
                # Held firing a while: a value hovering at the threshold pages once, not at
                # every crossing (firing, resolved, firing again a minute later).
                if alert.clear_ms is None:
                    alert.clear_ms = now_ms
                if now_ms - alert.clear_ms < rule.keep_firing_ms:
                    alert.value = value  # what listings show: the value now, not the last breach
                    return []
            del self.alerts[slot]
            alert.value = value
            if alert.state == FIRING and alert.sent_ms is not None:
                return [alert.record(rule, RESOLVED, max(now_ms, alert.since_ms))]
            return []
        if alert is None:
            start = now_ms if since_ms is None else since_ms
            alert = Alert(
                rule.name,
                bot_id,
                key,
                since_ms=start,
                value=value,
                threshold=threshold,
                window=window,
            )
            self.alerts[slot] = alert
        else:
            alert.value, alert.threshold, alert.window = value, threshold, window
            alert.clear_ms = None
        if alert.state == PENDING:
            if now_ms - alert.since_ms < rule.pending_ms:
                return []
            alert.state = FIRING
            alert.fired_ms = now_ms
        return self.notify_due(rule, alert, now_ms, silenced)

    def resolve(
        self, rule: Rule, key: str, now_ms: int, value: float | None = None
    ) -> list[dict[str, Any]]:
        """Clear one alert (if any) now, keeping its last value unless ``value`` is given."""
        alert = self.alerts.get((rule.name, key))
        if alert is None:
            return []
        new_value = alert.value if value is None else value
        return self.observe(
            rule,
            alert.bot_id,
            False,
            value=new_value,
            threshold=alert.threshold,
            window=alert.window,
            now_ms=now_ms,
            silenced=_never,
            key=key,
            hold=False,
        )

    @staticmethod
    def notify_due(
        rule: Rule, alert: Alert, now_ms: int, silenced: SilenceCheck
    ) -> list[dict[str, Any]]:
        """A firing notification when one is due: never sent yet, or ``repeat_interval`` ago.

        None while ``keep_firing_for`` holds it: its condition no longer holds, so a silence
        ending then must not page it for the first time, nor a repeat page it again."""
        if alert.state != FIRING or alert.clear_ms is not None:
            return []
        sent = alert.sent_ms
        if sent is not None and (
            rule.repeat_interval_ms <= 0 or now_ms - sent < rule.repeat_interval_ms
        ):
            return []
        if silenced(rule.name, alert.bot_id, now_ms):
            return []
        alert.sent_ms = now_ms
        record = alert.record(rule, FIRING)
        alert.labels = record["labels"]
        return [record]

    def to_list(self) -> list[dict[str, Any]]:
        return [alert.to_dict() for alert in self.alerts.values()]

    @classmethod
    def from_list(cls, bot_id: str, items: list[Mapping[str, Any]]) -> AlertBook:
        book = cls()
        for item in items:
            alert = Alert.from_dict(bot_id, item)
            book.alerts[(alert.rule, alert.key)] = alert
        return book


def _never(rule: str, bot_id: str, now_ms: int) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Silence:
    """Suppresses notifications of rules matching ``rule`` for bots matching ``bot`` (globs)."""

    id: str
    rule: str
    bot: str
    until_ms: int
    reason: str
    created_by: str
    created_ms: int

    def matches(self, rule: str, bot_id: str, now_ms: int) -> bool:
        return (
            now_ms < self.until_ms
            and fnmatch.fnmatchcase(rule, self.rule)
            and fnmatch.fnmatchcase(bot_id, self.bot)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["until"] = rfc3339(self.until_ms)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            id=str(data["id"]),
            rule=str(data["rule"]),
            bot=str(data["bot"]),
            until_ms=int(data["until_ms"]),
            reason=str(data["reason"]),
            created_by=str(data["created_by"]),
            created_ms=int(data["created_ms"]),
        )


class Silences:
    """The silences in force; expired ones are dropped by ``expire``."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[str, Silence] = {}

    def add(
        self, rule: str, bot: str, *, until_ms: int, reason: str, created_by: str, now_ms: int
    ) -> Silence:
        if not rule or not bot:
            raise ValueError("a silence needs a rule and a bot (use '*' for any)")
        if until_ms <= now_ms:
            raise ValueError("a silence must end in the future")
        digest = hashlib.sha256(f"{rule}\x00{bot}\x00{until_ms}\x00{now_ms}".encode()).hexdigest()
        silence = Silence(digest[:12], rule, bot, until_ms, reason, created_by, now_ms)
        self._by_id[silence.id] = silence
        return silence

    def restore(self, silence: Silence) -> None:
        self._by_id[silence.id] = silence

    def remove(self, silence_id: str) -> Silence | None:
        return self._by_id.pop(silence_id, None)

    def expire(self, now_ms: int) -> list[Silence]:
        ended = [s for s in self._by_id.values() if s.until_ms <= now_ms]
        for silence in ended:
            del self._by_id[silence.id]
        return ended

    def is_silenced(self, rule: str, bot_id: str, now_ms: int) -> bool:
        return any(s.matches(rule, bot_id, now_ms) for s in self._by_id.values())

    def covers(self, rule: str, bot_id: str) -> bool:
        """Whether a silence held (expired or not) matches: for listings between ticks."""
        return any(s.matches(rule, bot_id, s.until_ms - 1) for s in self._by_id.values())

    def __iter__(self) -> Iterator[Silence]:
        return iter(sorted(self._by_id.values(), key=lambda s: (s.until_ms, s.id)))

    def __len__(self) -> int:
        return len(self._by_id)

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self]

    @classmethod
    def from_list(cls, items: list[Mapping[str, Any]]) -> Silences:
        silences = cls()
        for item in items:
            silences.restore(Silence.from_dict(item))
        return silences
