"""Which dead letters a command works on, and the histogram an operator looks at first."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import timestamp_ms
from schemas.reason_class import reason_class
from streams.alerts import parse_duration
from streams.deadletters.records import Letter
from streams.dlq import STAGES
from streams.windows import rfc3339


class SelectionError(ValueError):
    """A filter the user gave cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class Selection:
    """Filters over dead letters; an empty field selects everything.

    Times are epoch milliseconds compared with ``Letter.failed_at_ms`` (when the record
    first failed): ``since <= t < until``.
    """

    stages: frozenset[str] = frozenset()
    bots: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    reason: re.Pattern[str] | None = None

    @property
    def everything(self) -> bool:
        """No filter: every letter matches (and none needs decoding to tell)."""
        return not (self.stages or self.bots or self.reason is not None
                    or self.since_ms is not None or self.until_ms is not None)  # fmt: skip

    def matches(self, letter: Letter) -> bool:
        if self.stages and letter.stage not in self.stages:
            return False
        if self.since_ms is not None or self.until_ms is not None:
            at = letter.failed_at_ms
            if self.since_ms is not None and at < self.since_ms:
                return False
            if self.until_ms is not None and at >= self.until_ms:
                return False
        if self.bots and letter.bot not in self.bots:
            return False
        return self.reason is None or self.reason.search(letter.reason) is not None

    def describe(self) -> str:
        parts = []
        if self.stages:
            parts.append("stage " + "|".join(sorted(self.stages)))
        if self.bots:
            parts.append("bot " + "|".join(sorted(self.bots)))
        if self.since_ms is not None:
            parts.append(f"since {rfc3339(self.since_ms)}")
        if self.until_ms is not None:
            parts.append(f"until {rfc3339(self.until_ms)}")
        if self.reason is not None:
            parts.append(f"reason /{self.reason.pattern}/")
        return ", ".join(parts) or "every dead letter"


def parse_time(text: str, option: str, now_ms: int) -> int:
    """An RFC 3339 timestamp with offset, ``now``, or a duration ago (``90m``, ``2h``, ``7d``)."""
    text = text.strip()
    if text == "now":
        return now_ms
    try:
        return now_ms - parse_duration(text)
    except ValueError:
        pass
    try:
        return timestamp_ms(text)
    except ValueError:
        raise SelectionError(
            f"{option} {text!r} is neither a time nor a duration.\n"
            "  fix: write an RFC 3339 time with offset (2026-11-23T10:00:00Z) or how long ago "
            "(30m, 2h, 7d)."
        ) from None


def make_selection(
    *,
    stages: Sequence[str] = (),
    bots: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    reason: str | None = None,
    now_ms: int,
) -> Selection:
    """A ``Selection`` from command-line values, or ``SelectionError`` saying what is wrong."""
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SelectionError(
            f"unknown stage {', '.join(map(repr, unknown))}.\n"
            f"  fix: use one of {', '.join(STAGES)} (repeat --stage for several)."
        )
    since_ms = parse_time(since, "--since", now_ms) if since else None
    until_ms = parse_time(until, "--until", now_ms) if until else None
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise SelectionError(
            f"--since ({rfc3339(since_ms)}) is not before --until ({rfc3339(until_ms)}).\n"
            "  fix: swap them, or widen the range."
        )
    pattern = None
    if reason is not None:
        try:
            pattern = re.compile(reason)
        except re.error as exc:
            raise SelectionError(
                f"--reason {reason!r} is not a regular expression: {exc}.\n"
                "  fix: escape special characters (for example \\( or \\.)."
            ) from None
    return Selection(frozenset(stages), frozenset(bots), since_ms, until_ms, pattern)


@dataclass
class Summary:
    """Counts by stage, reason (``reason_class``) and bot."""

    total: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    bots: Counter[str] = field(default_factory=Counter)
    # Letters of a failure already counted: its batch was redone after a crash before its
    # offsets were committed, and the letter written again (replay sends one of them).
    copies: int = 0
    _seen: set[int] = field(default_factory=set, repr=False)

    def add(self, letter: Letter) -> None:
        origin = letter.origin
        if origin is not None:
            known = hash(origin)  # an int a letter: a topic may hold millions
            if known in self._seen:
                self.copies += 1
                return
            self._seen.add(known)
        self.total += 1
        self.stages[letter.stage] += 1
        self.reasons[reason_class(letter.reason)] += 1
        self.bots[letter.bot or "(no bot)"] += 1

    def extend(self, letters: Iterable[Letter]) -> Summary:
        for letter in letters:
            self.add(letter)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "copies": self.copies,
            "stages": dict(self.stages.most_common()),
            "reasons": dict(self.reasons.most_common()),
            "bots": dict(self.bots.most_common()),
        }

    def lines(self, top: int = 10) -> list[str]:
        """The histogram as text: each section sorted by count, the ``top`` rows of each."""
        out = [f"{self.total} dead letter(s)"]
        if self.copies:
            copies = "copy" if self.copies == 1 else "copies"
            out[0] += f" (and {self.copies} {copies} of a letter written twice, not counted)"
        for title, counts in (("stage", self.stages), ("reason", self.reasons),
                              ("bot", self.bots)):  # fmt: skip
            if not counts:
                continue
            out.append(f"by {title}:")
            rows = counts.most_common()
            width = max(len(f"{n:,}") for _, n in rows[:top])
            for name, n in rows[:top]:
                out.append(f"  {n:>{width},}  {name}")
            if len(rows) > top:
                rest = sum(n for _, n in rows[top:])
                out.append(f"  {rest:>{width},}  ({len(rows) - top} more)")
        return out
