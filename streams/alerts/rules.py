"""Alert rules: the model and its loading from YAML, refused at load with the rule, field and line.

A rules file is a mapping with one key, ``rules``, a list of rules. Every rule has:

- ``name`` (unique), ``kind`` (``threshold``, ``absence``, ``burn_rate``, ``new_error_type``);
- ``severity``: ``critical`` (pages someone), ``warning`` (a ticket: look within the working
  day) or ``info`` (recorded, nobody is woken). A closed set, so receivers can route on it;
- ``selector`` (optional, default every bot): ``bots`` (ids), ``glob`` (fnmatch patterns),
  ``env`` and ``exclude`` (fnmatch patterns). A bot matches when it is listed in ``bots`` or
  matches a ``glob`` (either is enough; neither given means any bot) **and**, when ``env``
  is given, its latest event carried one of those envs, **and** it matches no ``exclude``
  pattern (one-shot scripts kept out of ``bot-down``, say). Each takes a string or a list
  of strings;
- ``labels`` (string map; ``alertname``, ``bot_id``, ``severity`` and ``error_type`` are set by
  botwatch and reserved) and ``annotations`` (string map; usually ``summary`` and
  ``runbook_url``). Annotations are ``str.format`` templates over ``{rule}``, ``{bot_id}``,
  ``{value}``, ``{threshold}``, ``{window}``, ``{severity}`` and ``{error_type}``, checked at
  load, so ``{value:.1%}`` works and a misspelt placeholder is refused;
- ``for`` (how long the condition must hold before the alert fires; default 0) and
  ``repeat_interval`` (how often a still-firing alert is notified again; default 4h, 0 = never).
- ``keep_firing_for`` (threshold and burn_rate rules): how long a firing alert stays firing
  once its condition stops holding (default 0): a value hovering at the threshold then
  pages once instead of firing, resolving and firing again every minute or two.

Durations are strings such as ``90s``, ``5m``, ``1h30m``, ``3d`` (units ms, s, m, h, d, w) or a
number of seconds. Kind-specific fields:

- ``threshold``: ``stat`` (one of ``STATS``), ``op`` (``>``, ``>=``, ``<``, ``<=``),
  ``threshold`` (a number), ``span`` (how many 1-minute windows, ending with the one that just
  closed, are merged; default 1) and ``min_events`` (below it the condition is false; default 0).
- ``absence``: ``for`` is how long a known bot must have sent nothing; it fires then at once.
- ``burn_rate``: ``objective`` (success ratio of finished jobs, e.g. 0.99), ``windows`` (list of
  ``{long, short, factor}``; the alert is active when any pair has both burn rates above its
  factor; default by severity: ``critical`` gets the SRE workbook's page pairs 1h/5m at 14.4
  and 6h/30m at 6, others its ticket pair 3d/6h at 1) and ``min_events`` (finished jobs the
  long window needs; default 1).
- ``new_error_type``: ``days`` (how long an error type stays known; default 7), ``learning``
  (a bot seen for less than this only learns its types; default 1h, so a restart with empty
  state or a new bot does not alert on every type it already had) and ``resolve_after``
  (default 1h).
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

KINDS: Final = ("threshold", "absence", "burn_rate", "new_error_type")
SEVERITIES: Final = ("critical", "warning", "info")
STATS: Final = (
    "error_rate",
    "failure_rate",
    "p95_duration_ms",
    "p99_duration_ms",
    "count",
    "errors",
    "failures",
    "retries",
)
OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
RESERVED_LABELS: Final = frozenset({"alertname", "bot_id", "severity", "error_type"})
# What Alertmanager takes as a label or annotation name (Prometheus's rule; ``__`` is its own).
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
PLACEHOLDERS: Final = ("rule", "bot_id", "value", "threshold", "window", "severity", "error_type")
DEFAULT_RULES: Final = Path(__file__).resolve().parent / "default_rules.yaml"
DEFAULT_REPEAT_MS: Final = 4 * 3_600_000
MINUTE_MS: Final = 60_000
# The longest span or window a rule may ask for bounds the state kept per bot.
MAX_SPAN: Final = 1440
MAX_BURN_WINDOW_MS: Final = 30 * 86_400_000
PAGE_WINDOWS: Final = ((3_600_000, 300_000, 14.4), (21_600_000, 1_800_000, 6.0))
TICKET_WINDOWS: Final = ((259_200_000, 21_600_000, 1.0),)

_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION_RE: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_COMMON: Final = frozenset(
    {"name", "kind", "severity", "selector", "labels", "annotations", "for", "repeat_interval"}
)
_FIELDS: Final = {
    "threshold": _COMMON | {"stat", "op", "threshold", "span", "min_events", "keep_firing_for"},
    "absence": _COMMON,
    "burn_rate": _COMMON | {"objective", "windows", "min_events", "keep_firing_for"},
    "new_error_type": _COMMON | {"days", "learning", "resolve_after"},
}


def parse_duration(text: str) -> int:
    """``"1h30m"`` -> milliseconds; ValueError for anything else."""
    text = text.strip()
    if not text or _DURATION_RE.sub("", text):
        raise ValueError(text)
    return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_RE.findall(text))


def format_duration(ms: int) -> str:
    """The shortest exact form: ``300000`` -> ``"5m"``, ``5400000`` -> ``"1h30m"``."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS[unit]
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Selector:
    bots: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    envs: frozenset[str] = frozenset()
    excluded: tuple[str, ...] = ()

    def matches(self, bot_id: str, env: str | None) -> bool:
        if self.envs and env not in self.envs:
            return False
        if any(fnmatch.fnmatchcase(bot_id, g) for g in self.excluded):
            return False
        if not self.bots and not self.globs:
            return True
        return bot_id in self.bots or any(fnmatch.fnmatchcase(bot_id, g) for g in self.globs)


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    stat: str
    op: str
    threshold: float
    span: int = 1
    min_events: int = 0


@dataclass(frozen=True, slots=True)
class AbsenceSpec:
    """Absence has no fields of its own: the rule's ``for`` is the silence that means down."""


@dataclass(frozen=True, slots=True)
class BurnWindow:
    long_ms: int
    short_ms: int
    factor: float

    @property
    def label(self) -> str:
        return f"{format_duration(self.long_ms)}/{format_duration(self.short_ms)}"


@dataclass(frozen=True, slots=True)
class BurnRateSpec:
    objective: float
    windows: tuple[BurnWindow, ...]
    min_events: int = 1


@dataclass(frozen=True, slots=True)
class NewErrorTypeSpec:
    days: int = 7
    learning_ms: int = 3_600_000
    resolve_after_ms: int = 3_600_000


Spec = ThresholdSpec | AbsenceSpec | BurnRateSpec | NewErrorTypeSpec


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: Literal["threshold", "absence", "burn_rate", "new_error_type"]
    severity: str
    spec: Spec
    selector: Selector = field(default_factory=Selector)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    for_ms: int = 0
    repeat_interval_ms: int = DEFAULT_REPEAT_MS
    keep_firing_ms: int = 0

    @property
    def pending_ms(self) -> int:
        """How long the condition must hold before firing (absence's ``for`` is its condition)."""
        return 0 if self.kind == "absence" else self.for_ms

    @property
    def window(self) -> str:
        """What the alert record's ``window`` says the value was measured over."""
        spec = self.spec
        if isinstance(spec, ThresholdSpec):
            return format_duration(spec.span * MINUTE_MS)
        if isinstance(spec, BurnRateSpec):
            return spec.windows[0].label
        if isinstance(spec, NewErrorTypeSpec):
            return f"{spec.days}d"
        return format_duration(self.for_ms)


class RulesError(ValueError):
    """A rules file botwatch refuses; ``problems`` has one ``file:line: rule: field: why`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


Path_ = tuple[str | int, ...]


class _Checker:
    """Validates the constructed document, reporting against the line map of its nodes."""

    def __init__(self, source: str, lines: dict[Path_, int]) -> None:
        self.source = source
        self.lines = lines
        self._found: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        """In the file's order (a rule's fields are checked in the order of the schema)."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]

    def line(self, path: Path_) -> int:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def report(self, who: str, path: Path_, field_name: str, why: str) -> None:
        line = self.line(path)
        where = f"{self.source}:{line}"
        self._found.append(
            (line, f"{where}: {who}: {field_name}: {why}" if who else f"{where}: {why}")
        )


class _Invalid(Exception):
    """One field is wrong; the rule's other fields are still checked."""


class _Reported(_Invalid):
    """Problems inside a nested field were reported one by one already."""


def _got(value: Any) -> str:
    return f"got {value!r}"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"must be a number, {_got(value)}")
    return float(value)


def _int(value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Invalid(f"must be an integer >= {low}, {_got(value)}")
    if high is not None and value > high:
        raise _Invalid(f"must be at most {high}, {_got(value)}")
    return int(value)


def _duration(value: Any, positive: bool = False) -> int:
    if isinstance(value, bool):
        raise _Invalid(f"must be a duration such as 5m, {_got(value)}")
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        ms: int = round(value * 1000)
    elif isinstance(value, str):
        try:
            ms = parse_duration(value)
        except ValueError:
            raise _Invalid(f"must be a duration such as 5m, {_got(value)}") from None
    else:
        raise _Invalid(f"must be a duration such as 5m, {_got(value)}")
    if positive and ms <= 0:
        raise _Invalid(f"must be longer than 0, {_got(value)}")
    return ms


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be a non-empty string, {_got(value)}")
    return value


def _strings(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise _Invalid(f"must be a string or a list of strings, {_got(value)}")
    return items


def _scalar_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a mapping of names to strings, {_got(value)}")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, dict | list) or item is None:
            raise _Invalid(f"must be a mapping of names to strings, {_got({key: item})}")
        out[key] = str(item)
    return out


_LABEL_NAME_RULE: Final = (
    "must be letters, digits and '_', not starting with a digit or '__' (Alertmanager "
    "refuses any other name, and with it the alert), like runbook_url"
)


def _label_name(key: str) -> bool:
    return _LABEL_NAME.fullmatch(key) is not None and not key.startswith("__")


_FORMATTER: Final = string.Formatter()


def _template_check(template: str) -> None:
    """Refuse what could fail when an alert fills the template in: an unknown placeholder, an
    index or attribute (``{error_type[0]}`` holds for a sample, not for an empty type), a
    format the value's type does not take."""
    try:
        names = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    except ValueError as exc:
        raise _Invalid(f"is not a valid template: {exc}") from None
    for name in names:
        if name in PLACEHOLDERS:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if base in PLACEHOLDERS:
            raise _Invalid(
                f"{{{name}}}: a placeholder takes no index or attribute; write {{{base}}}"
            )
        raise _Invalid(f"unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})")
    sample: dict[str, Any] = dict.fromkeys(PLACEHOLDERS, "x")
    sample.update(value=0.5, threshold=0.25)
    try:
        template.format_map(sample)
    except KeyError as exc:  # a placeholder inside a format spec: ``{value:{width}}``
        raise _Invalid(
            f"unknown placeholder {{{exc.args[0]}}} (known: {', '.join(PLACEHOLDERS)})"
        ) from None
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise _Invalid(f"is not a valid template: {exc}") from None


def _compose(text: str, source: str) -> tuple[Any, dict[Path_, int], list[tuple[Path_, str]]]:
    """The document, the line of every field (1-based) and duplicated keys with their paths."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError([f"{source}:{line}: not valid YAML: {problem}"]) from None
    lines: dict[Path_, int] = {}
    dups: list[tuple[Path_, str]] = []
    if node is not None:
        _walk(node, (), lines, dups)
    return data, lines, dups


def _walk(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], dups: list[tuple[Path_, str]]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                lines[child] = key_node.start_mark.line + 1
                dups.append((child, key))
                continue
            seen.add(key)
            # A field's line is its key's line, even when its value starts below it.
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, dups)


def _field_name(rest: Iterable[str | int]) -> str:
    text = ""
    for part in rest:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def parse_rules(text: str, source: str = "<rules>") -> list[Rule]:
    """Rules from YAML text; RulesError lists every problem found, each with its line."""
    data, lines, dups = _compose(text, source)
    check = _Checker(source, lines)
    if not isinstance(data, dict) or "rules" not in data:
        check.report("", (), "", "expected a mapping with a 'rules' list")
        raise RulesError(check.problems)
    for key in data:
        if key != "rules":
            check.report("", (key,), "", f"unknown top-level key {key!r} (expected 'rules')")
    raw_rules = data["rules"]
    if not isinstance(raw_rules, list):
        check.report("", ("rules",), "rules", f"must be a list of rules, {_got(raw_rules)}")
        raise RulesError(check.problems)
    names: dict[str, int] = {}
    who_by_index: dict[int, str] = {}
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        name = raw.get("name") if isinstance(raw, dict) else None
        who = f'rule "{name}"' if isinstance(name, str) and name.strip() else f"rule #{i + 1}"
        who_by_index[i] = who
        if isinstance(name, str) and name in names:
            check.report(
                who, ("rules", i, "name"), "name", f"duplicates the rule at line {names[name]}"
            )
        elif isinstance(name, str):
            names[name] = check.line(("rules", i, "name"))
        rule = _rule(raw, i, who, check)
        if rule is not None:
            rules.append(rule)
    for path, key in dups:
        if len(path) >= 3 and path[0] == "rules" and isinstance(path[1], int):
            who = who_by_index.get(path[1], "")
            check.report(who, path, _field_name(path[2:]), f"key {key!r} is given twice")
        else:
            check.report("", path, "", f"key {key!r} is given twice")
    if check.problems:
        raise RulesError(check.problems)
    return rules


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Rules from ``path``, or the documented default set when ``path`` is None."""
    target = DEFAULT_RULES if path is None else Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError([f"{target}: cannot read the rules file: {exc.strerror}"]) from None
    return parse_rules(text, str(path) if path is not None else target.name)


def _rule(raw: Any, i: int, who: str, check: _Checker) -> Rule | None:
    base: Path_ = ("rules", i)
    if not isinstance(raw, dict):
        check.report(who, base, "rule", f"must be a mapping of fields, {_got(raw)}")
        return None
    before = len(check.problems)

    def take(name: str, convert: Callable[[Any], Any], default: Any = ..., label: str = "") -> Any:
        path = (*base, name)
        if name not in raw:
            if default is ...:
                check.report(who, base, label or name, "is required")
                return None
            return default
        try:
            return convert(raw[name])
        except _Reported:
            return None
        except _Invalid as exc:
            check.report(who, path, label or name, str(exc))
            return None

    name = take("name", _string)
    kind = take("kind", lambda v: _choice(v, KINDS))
    severity = take("severity", lambda v: _choice(v, SEVERITIES))
    allowed = _FIELDS.get(kind, _COMMON | {f for fs in _FIELDS.values() for f in fs})
    for key in raw:
        if key not in allowed:
            hint = f" for kind {kind}" if kind else ""
            check.report(who, (*base, key), str(key), f"unknown field{hint}")
    selector = take("selector", lambda v: _selector(v, base, who, check), Selector())
    labels = take("labels", _scalar_map, {})
    if labels:
        for key in labels:
            if key in RESERVED_LABELS:
                check.report(who, (*base, "labels", key), f"labels.{key}", "is set by botwatch")
            elif not _label_name(key):
                check.report(who, (*base, "labels", key), f"labels.{key}", _LABEL_NAME_RULE)
    annotations = take("annotations", _scalar_map, {})
    if annotations:
        for key, template in annotations.items():
            where = (*base, "annotations", key)
            if not _label_name(key):
                check.report(who, where, f"annotations.{key}", _LABEL_NAME_RULE)
            try:
                _template_check(template)
            except _Invalid as exc:
                check.report(who, where, f"annotations.{key}", str(exc))
    for_ms = take("for", _duration, ... if kind == "absence" else 0)
    if kind == "absence" and "for" in raw and for_ms is not None and for_ms <= 0:
        check.report(who, (*base, "for"), "for", "must be longer than 0 for an absence rule")
    repeat = take("repeat_interval", _duration, DEFAULT_REPEAT_MS)
    keep_firing = take("keep_firing_for", _duration, 0)

    spec = _spec(kind, severity, take, lambda v: _burn_windows(v, base, who, check))
    if len(check.problems) > before or spec is None:
        return None
    assert name is not None and kind is not None and severity is not None
    assert for_ms is not None and repeat is not None and keep_firing is not None
    assert selector is not None and labels is not None and annotations is not None
    return Rule(
        name=name,
        kind=kind,
        severity=severity,
        spec=spec,
        selector=selector,
        labels=labels,
        annotations=annotations,
        for_ms=for_ms,
        repeat_interval_ms=repeat,
        keep_firing_ms=keep_firing,
    )


Take = Callable[..., Any]


_RATES: Final = frozenset({"error_rate", "failure_rate"})


def _threshold(value: Any, stat: str | None) -> float:
    number = _number(value)
    if stat in _RATES and not 0.0 <= number <= 1.0:
        raise _Invalid(f"a rate is between 0 and 1 (0.05 is 5%), got {value!r}")
    return number


def _spec(
    kind: str | None,
    severity: str | None,
    take: Take,
    burn_windows: Callable[[Any], tuple[BurnWindow, ...]],
) -> Spec | None:
    """The kind-specific fields of one rule; None when one of them was reported."""
    spec: Spec | None = None
    if kind == "threshold":
        stat = take("stat", lambda v: _choice(v, STATS))
        op = take("op", lambda v: _choice(v, tuple(OPS)))
        threshold = take("threshold", lambda v: _threshold(v, stat))
        span = take("span", lambda v: _int(v, 1, MAX_SPAN), 1)
        min_events = take("min_events", lambda v: _int(v, 0), 0)
        if None not in (stat, op, threshold, span, min_events):
            spec = ThresholdSpec(stat, op, threshold, span, min_events)
    elif kind == "absence":
        spec = AbsenceSpec()
    elif kind == "burn_rate":
        objective = take("objective", _objective)
        default_windows = PAGE_WINDOWS if severity == "critical" else TICKET_WINDOWS
        windows = take(
            "windows",
            burn_windows,
            tuple(BurnWindow(*w) for w in default_windows),
        )
        min_events = take("min_events", lambda v: _int(v, 0), 1)
        if None not in (objective, windows, min_events):
            spec = BurnRateSpec(objective, windows, min_events)
    elif kind == "new_error_type":
        days = take("days", lambda v: _int(v, 1, 366), 7)
        learning = take("learning", _duration, 3_600_000)
        resolve_after = take("resolve_after", lambda v: _duration(v, positive=True), 3_600_000)
        if None not in (days, learning, resolve_after):
            spec = NewErrorTypeSpec(days, learning, resolve_after)
    return spec


def _choice(value: Any, options: tuple[str, ...]) -> Any:
    if value not in options:
        raise _Invalid(f"must be one of {', '.join(options)}; {_got(value)}")
    return value


def _objective(value: Any) -> float:
    number = _number(value)
    if not 0 < number < 1:
        raise _Invalid(f"must be between 0 and 1 (exclusive), such as 0.99; {_got(value)}")
    return number


def _selector(value: Any, base: Path_, who: str, check: _Checker) -> Selector:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a mapping with bots, glob, env and/or exclude; {_got(value)}")
    parts: dict[str, list[str]] = {}
    bad = False
    for key, item in value.items():
        path = (*base, "selector", key)
        if key not in {"bots", "glob", "env", "exclude"}:
            expected = "unknown field (expected bots, glob, env, exclude)"
            check.report(who, path, f"selector.{key}", expected)
            bad = True
            continue
        try:
            parts[key] = _strings(item)
        except _Invalid as exc:
            check.report(who, path, f"selector.{key}", str(exc))
            bad = True
    if bad:
        raise _Reported()
    return Selector(
        frozenset(parts.get("bots", ())),
        tuple(parts.get("glob", ())),
        frozenset(parts.get("env", ())),
        tuple(parts.get("exclude", ())),
    )


def _burn_windows(value: Any, base: Path_, who: str, check: _Checker) -> tuple[BurnWindow, ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"must be a list of {{long, short, factor}}; {_got(value)}")
    out = []
    bad = False
    for j, item in enumerate(value):
        path = (*base, "windows", j)
        label = f"windows[{j}]"
        if not isinstance(item, dict) or set(item) != {"long", "short", "factor"}:
            check.report(who, path, label, f"must have exactly long, short, factor; {_got(item)}")
            bad = True
            continue
        parsed: dict[str, Any] = {}
        for key, convert in (("long", _duration), ("short", _duration), ("factor", _number)):
            try:
                parsed[key] = convert(item[key])
            except _Invalid as exc:
                check.report(who, (*path, key), f"{label}.{key}", str(exc))
                bad = True
        if len(parsed) < 3:
            continue
        long_ms, short_ms, factor = parsed["long"], parsed["short"], parsed["factor"]
        why = None
        if short_ms < MINUTE_MS or short_ms % MINUTE_MS or long_ms % MINUTE_MS:
            why = "long and short must be whole minutes, at least 1m"
        elif long_ms <= short_ms:
            why = "long must be longer than short"
        elif long_ms > MAX_BURN_WINDOW_MS:
            why = f"long may be at most {format_duration(MAX_BURN_WINDOW_MS)}"
        elif factor <= 0:
            why = "factor must be above 0"
        if why:
            check.report(who, path, label, why)
            bad = True
            continue
        out.append(BurnWindow(long_ms, short_ms, factor))
    if bad:
        raise _Reported()
    return tuple(out)
