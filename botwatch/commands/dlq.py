"""`botwatch dlq list|show|export|import|replay`: what maintainers run after a fix.

Thin: filters are parsed by ``streams.deadletters.select``, replays planned by
``streams.deadletters.plan`` and run by ``streams.deadletters.kafka``. Exit codes of
``replay`` and ``import``: 0 every selected record was sent (or, after an interruption, had
been); 2 some were not (quarantined by the loop guard, or not replayable); 3 the run stopped
before the end (``--max``, Ctrl-C, declined): run the same command again to continue; 1 an
error.
"""

from __future__ import annotations

import asyncio
import heapq
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import click
import orjson

from botwatch.commands.common import BotwatchError, print_table, printable, settings_of
from botwatch.settings import Settings
from sinks.redact import Redactor
from streams.deadletters import jsonl
from streams.deadletters import kafka as dl
from streams.deadletters.plan import Action, PlanError, parse_rate, replay_group
from streams.deadletters.records import Letter, parse_position
from streams.deadletters.select import Selection, SelectionError, Summary, make_selection
from streams.dlq import STAGES
from streams.windows import rfc3339

EXIT_NOT_ALL: Final = 2
EXIT_STOPPED: Final = 3
REASON_CHARS: Final = 90

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _filters(f: F) -> F:
    options = [
        click.option(
            "--stage",
            "stages",
            multiple=True,
            metavar="STAGE",
            help=f"Only this stage ({', '.join(STAGES)}); repeat for several.",
        ),
        click.option("--bot", "bots", multiple=True, help="Only this bot; repeat for several."),
        click.option(
            "--since", help="Failed at or after: RFC 3339 time, or how long ago (30m, 2h, 7d)."
        ),
        click.option("--until", help="Failed before: RFC 3339 time, or how long ago."),
        click.option("--reason", metavar="REGEX", help="Only reasons this regex finds."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _selection(
    stages: Sequence[str],
    bots: Sequence[str],
    since: str | None,
    until: str | None,
    reason: str | None,
) -> Selection:
    try:
        return make_selection(
            stages=stages,
            bots=bots,
            since=since,
            until=until,
            reason=reason,
            now_ms=int(time.time() * 1000),
        )
    except SelectionError as exc:
        raise BotwatchError(f"error: {exc}") from None


def _run(settings: Settings, job: Any) -> Any:
    """``asyncio.run(job)`` with Kafka's failures turned into errors the user can act on."""
    config = settings.streams
    try:
        return asyncio.run(job)
    except dl.KafkaUnavailable as exc:
        raise BotwatchError(
            f"error: {exc}.\n"
            "  fix: start it (`botwatch stack up`) or point BOTWATCH_KAFKA_BOOTSTRAP "
            "(`botwatch --kafka-bootstrap HOST:PORT dlq ...`) at it."
        ) from None
    except dl.TopicMissing as exc:
        if exc.role == "dead-letter":
            fix = "run `botwatch setup` (or a worker), or set BOTWATCH_DLQ_TOPIC to the topic."
        elif exc.letters:
            fix = (
                "create it, name an existing topic with --to, or leave those letters out "
                "(--stage, --bot, --reason, --since, --until); nothing was sent."
            )
        else:
            fix = "create it, or name an existing topic with --to."
        raise BotwatchError(f"error: {exc} on {config.kafka_bootstrap}.\n  fix: {fix}") from None
    except PlanError as exc:
        raise BotwatchError(f"error: {exc}") from None


async def _collect(source: Any, limit: int | None, summary: Summary | None) -> tuple[Any, int]:
    """The newest ``limit`` letters of ``source`` (all of them when None), and the count."""
    kept: list[tuple[int, int, int, Letter]] = []
    total = 0
    async for letter in source:
        total += 1
        if summary is not None:
            summary.add(letter)
            continue
        item = (letter.failed_at_ms, letter.partition, letter.offset, letter)
        if limit is None or len(kept) < limit:
            heapq.heappush(kept, item)
        else:
            heapq.heappushpop(kept, item)
    return [item[3] for item in sorted(kept, key=lambda i: i[:3])], total


def _short(text: str, width: int = REASON_CHARS) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _row(letter: Letter, redactor: Redactor) -> tuple[str, ...]:
    """A table row; secrets in the reason are redacted, as in the dead-letter index (a
    table gets pasted into tickets). ``dlq show`` and ``--json`` give the record as it is."""
    return (
        letter.position,
        rfc3339(letter.failed_at_ms),
        redactor.redact_identifier(letter.bot) if letter.bot else "-",
        letter.stage,
        str(letter.replay_count),
        _short(redactor.redact_reason(letter.reason)),
    )


def _summary_text(summary: Summary, settings: Settings) -> str:
    """The histogram as every command prints it: secrets redacted (``_redacted_summary``),
    control characters escaped."""
    _redacted_summary(summary, Redactor(settings.sink.redact_keys))
    return "\n".join(printable(line) for line in summary.lines())


def _redacted_summary(summary: Summary, redactor: Redactor) -> None:
    """The summary's reason classes and bots with secrets redacted, as in ``_row`` (alike
    ones counted together)."""
    reasons: Counter[str] = Counter()
    for reason, n in summary.reasons.items():
        reasons[redactor.redact_reason(reason)] += n
    bots: Counter[str] = Counter()
    for bot, n in summary.bots.items():
        bots[redactor.redact_identifier(bot)] += n
    summary.reasons, summary.bots = reasons, bots


ROW_HEADER: Final = ("POSITION", "FAILED AT", "BOT", "STAGE", "REPLAYS", "REASON")


@click.group()
def dlq() -> None:
    """Dead letters: list, show, export/import for fixing by hand, and replay."""


# -- list / show --------------------------------------------------------------------------


@dlq.command("list")
@_filters
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="Show the newest N.")  # fmt: skip
@click.option("--summary", is_flag=True, help="Counts by stage, reason and bot instead.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the export format).")
@click.pass_context
def list_letters(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    stages: tuple[str, ...],
    bots: tuple[str, ...],
    since: str | None,
    until: str | None,
    reason: str | None,
    limit: int,
    summary: bool,
    as_json: bool,
) -> None:
    """Dead letters (position, failure time, bot, stage, reason), newest last."""
    settings = settings_of(ctx)
    selection = _selection(stages, bots, since, until, reason)
    config = settings.streams
    histogram = Summary() if summary else None
    source = dl.scan(config.kafka_bootstrap, config.dlq_topic, selection)
    letters, total = _run(settings, _collect(source, limit, histogram))
    redactor = Redactor(settings.sink.redact_keys)
    if histogram is not None:
        if as_json:
            _redacted_summary(histogram, redactor)
            click.echo(orjson.dumps(histogram.to_dict()))
        else:
            click.echo(_summary_text(histogram, settings))
        return
    if as_json:
        for letter in letters:
            click.echo(jsonl.to_line(letter), nl=False)
        if total > len(letters):  # on stderr: the lines stay JSON
            click.echo(f"({len(letters)} newest of {total}; --limit N shows more)", err=True)
        return
    if not total:
        click.echo(f"no dead letter on {config.dlq_topic} matches ({selection.describe()})")
        return
    print_table([_row(x, redactor) for x in letters], ROW_HEADER)
    if total > len(letters):
        click.echo(f"({len(letters)} newest of {total}; --limit N shows more)")


def _payload_text(value: bytes | None) -> str:
    """The payload pretty-printed when it is JSON that reads back the same, else as it is:
    a key given twice (which OpenSearch refuses) showed once, hiding what was wrong."""
    if value is None:
        return "(none: a tombstone)"
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    else:
        if jsonl.reads_back(value, parsed):
            return orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode()
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "(not UTF-8, shown as escaped bytes)\n" + repr(value)[2:-1]


def _show(letter: Letter) -> None:
    fields = [
        ("dead letter", f"{letter.topic} {letter.position}"),
        ("stage", letter.stage),
        ("reason", letter.reason),
        ("exception", letter.exception or "-"),
        ("bot", letter.bot or "-"),
        ("event id", letter.event_id or "-"),
        (
            "original",
            f"{letter.original_topic} {letter.original_partition}:{letter.original_offset}",
        ),
        (
            "original time",
            rfc3339(letter.original_timestamp_ms)
            if letter.original_timestamp_ms is not None
            else "-",
        ),
        ("first failed at", letter.first_failed_at or "-"),
        ("replay count", str(letter.replay_count)),
        ("key", "-" if letter.key is None else repr(letter.key)[2:-1]),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"{name + ':':<{width + 1}} {printable(value)}")
    for problem in letter.problems:
        click.echo(f"problem: {printable(problem)}")
    click.echo("headers:")
    for name, raw in letter.headers:
        click.echo(f"  {printable(name)}: {printable(raw.decode('utf-8', 'backslashreplace'))}")
    click.echo("payload:")
    click.echo(printable(_payload_text(letter.value), lines=True))


async def _find(bootstrap: str, topic: str, event_id: str) -> list[Letter]:
    return [x async for x in dl.scan(bootstrap, topic) if x.event_id == event_id]


@dlq.command("show")
@click.argument("which", metavar="PARTITION:OFFSET | EVENT_ID")
@click.option("--json", "as_json", is_flag=True, help="The export format, one JSON line each.")
@click.pass_context
def show(ctx: click.Context, which: str, as_json: bool) -> None:
    """One dead letter in full: headers decoded, payload pretty-printed."""
    settings = settings_of(ctx)
    config = settings.streams
    position = parse_position(which)
    if position is not None:
        found = _run(settings, dl.fetch(config.kafka_bootstrap, config.dlq_topic, *position))
        letters = [found] if found is not None else []
    else:
        letters = _run(settings, _find(config.kafka_bootstrap, config.dlq_topic, which))
    if not letters:
        what = f"at {which}" if position is not None else f"with event_id {which!r}"
        raise BotwatchError(
            f"error: no dead letter {what} on {config.dlq_topic}.\n"
            "  fix: copy a POSITION or an event id from `botwatch dlq list`."
        )
    for n, letter in enumerate(letters):
        if as_json:
            click.echo(jsonl.to_line(letter), nl=False)
            continue
        if n:
            click.echo()
        _show(letter)


# -- export / import ----------------------------------------------------------------------


async def _export(bootstrap: str, topic: str, selection: Selection, out: Path) -> int:
    n = 0
    with out.open("wb") as f:
        async for letter in dl.scan(bootstrap, topic, selection):
            f.write(jsonl.to_line(letter))
            n += 1
    return n


@dlq.command("export")
@_filters
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The JSON-lines file to write (replaced).")  # fmt: skip
@click.pass_context
def export(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    stages: tuple[str, ...],
    bots: tuple[str, ...],
    since: str | None,
    until: str | None,
    reason: str | None,
    out: Path,
) -> None:
    """Write dead letters to a JSON-lines file, to fix by hand and `dlq import`."""
    settings = settings_of(ctx)
    selection = _selection(stages, bots, since, until, reason)
    config = settings.streams
    try:
        n = _run(settings, _export(config.kafka_bootstrap, config.dlq_topic, selection, out))
    except OSError as exc:
        raise BotwatchError(f"error: cannot write {out}: {exc}") from None
    click.echo(f"exported {n} dead letter(s) ({selection.describe()}) to {out}")


def _read_lines(path: Path) -> list[Letter]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BotwatchError(f"error: cannot read {path}: {exc}") from None
    letters = []
    # An editor may save the file with a byte order mark: not part of the first line.
    for number, line in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
        if not line.strip():
            continue
        try:
            letters.append(jsonl.from_line(line, number))
        except jsonl.LineError as exc:
            raise BotwatchError(
                f"error: {path}: {exc}.\n"
                "  fix: keep each line a JSON object as `dlq export` wrote it; edit only "
                "`event` (or `value`) and `key`."
            ) from None
    return letters


def _confirm(n: int, threshold: int, yes: bool) -> bool:
    if yes or n <= threshold:
        return True
    if not sys.stdin.isatty():
        raise BotwatchError(
            f"error: this would send {n:,} records, more than BOTWATCH_DLQ_CONFIRM_ABOVE "
            f"({threshold:,}), and there is no terminal to ask.\n  fix: pass --yes."
        )
    return click.confirm(f"send {n:,} records?", default=False)


def _max_replays(settings: Settings, given: int | None) -> int:
    return settings.streams.dlq_max_replays if given is None else given


_TARGET_OPTIONS: Final = [
    click.option(
        "--to",
        help="Send everything to this topic instead of each original topic (a job_failure "
        "letter goes only to another topic than its original one).",
    ),
    click.option(
        "--max-replays",
        type=click.IntRange(0),
        help="Quarantine records replayed this often already [BOTWATCH_DLQ_MAX_REPLAYS: 3].",
    ),
    click.option("--dry-run", is_flag=True, help="Send nothing: print what would go where."),
    click.option("--yes", is_flag=True, help="Do not ask before sending many records."),
]


def _target_options(f: F) -> F:
    for option in reversed(_TARGET_OPTIONS):
        f = option(f)
    return f


@dlq.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_target_options
@click.pass_context
def import_letters(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    file: Path,
    to: str | None,
    max_replays: int | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Send the (fixed) records of a `dlq export` file back to be processed."""
    settings = settings_of(ctx)
    config = settings.streams
    letters = _read_lines(file)
    try:
        decisions = dl.plan_import(
            letters,
            to=to,
            dlq_topic=config.dlq_topic,
            max_replays=_max_replays(settings, max_replays),
        )
    except PlanError as exc:
        raise BotwatchError(f"error: {exc}") from None
    sending = [(x, d.target) for x, d in decisions if d.action is Action.SEND and d.target]
    held = [(x, d) for x, d in decisions if d.action is not Action.SEND]
    targets = sorted({t for _, t in sending})
    _run(settings, dl.check_topics(config.kafka_bootstrap, targets, "target"))
    for letter, decision in held:
        click.echo(
            f"not sent ({decision.action.value}): {letter.source_id}: {printable(decision.why)}"
        )
    if dry_run:
        for target in targets:
            n = sum(1 for _, t in sending if t == target)
            click.echo(f"dry run: would send {n} record(s) to {target}")
        click.echo(_summary_text(Summary().extend(x for x, _ in decisions), settings))
        ctx.exit(EXIT_NOT_ALL if held else 0)
    if not _confirm(len(sending), config.dlq_confirm_above, yes):
        click.echo("nothing sent")
        ctx.exit(EXIT_STOPPED)
    sent, refused = _run(settings, dl.send_letters(config.kafka_bootstrap, sending))
    for target, n in sorted(sent.items()):
        click.echo(f"sent {n} record(s) to {target}")
    by_target: dict[str, list[str]] = {}
    for letter, target in refused:
        by_target.setdefault(target, []).append(letter.source_id)
    _too_large(by_target, "then import the file again")
    if held:
        click.echo(f"{len(held)} record(s) not sent (see above)")
    ctx.exit(EXIT_NOT_ALL if held or refused else 0)


def _too_large(by_target: dict[str, list[str]], remedy: str) -> None:
    """Name the dead letters a target refused as too large, and what to do."""
    for target, where in sorted(by_target.items()):
        shown = ", ".join(where[: dl.PREVIEW])
        if len(where) > dl.PREVIEW:
            shown += f" and {len(where) - dl.PREVIEW} more"
        click.echo(
            f"not sent: {len(where)} record(s) too large for {target} ({shown}): raise the "
            f"topic's max.message.bytes or make them smaller, {remedy}"
        )


# -- replay -------------------------------------------------------------------------------


class _Bar:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.on = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, counts: dl.ReplayCounts, plan: dl.ReplayPlan) -> None:
        now = time.monotonic()
        if not self.on or now - self.last < 0.2:
            return
        self.last = now
        done = counts.sent + counts.already_sent + counts.quarantined + counts.skipped
        if not plan.counted:  # the total is the window's size: count what was read of it
            done = counts.read
        share = done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        click.echo(
            f"\r[{bar:<30}] {done:,}/{self.total:,} {share:4.0%}  sent {counts.sent:,}  "
            f"quarantined {counts.quarantined:,}  {counts.rate:,.0f}/s ",
            nl=False,
            err=True,
        )

    def end(self) -> None:
        if self.on:
            click.echo(err=True)


def _print_plan(plan: dl.ReplayPlan, group: str, settings: Settings) -> None:
    redactor = Redactor(settings.sink.redact_keys)
    rows = [
        (
            letter.position,
            redactor.redact_identifier(letter.bot) if letter.bot else "-",
            letter.stage,
            str(letter.replay_count),
            decision.action.value,
            decision.target or decision.why,
        )
        for letter, decision in plan.preview
    ]
    if rows:
        print_table(rows, ("POSITION", "BOT", "STAGE", "REPLAYS", "ACTION", "TARGET"))
        if plan.selected.total > len(rows):
            click.echo(f"(first {len(rows)} of {plan.selected.total})")
    for target, n in sorted(plan.targets.items()):
        sending = "would send" if n else ""
        click.echo(f"{sending} {n} to {target}".strip())
    click.echo(
        f"send {plan.actions['send']}, quarantine {plan.actions['quarantine']}, "
        f"skip {plan.actions['skip']}"
        + (" (continuing an interrupted replay)" if plan.resumed else "")
        + f"; progress kept by consumer group {group}"
    )
    for why, n in plan.skipped_why.most_common():
        click.echo(f"skip {n}: {printable(why)}")
    click.echo(_summary_text(plan.selected, settings))


async def _replay(
    options: dl.ReplayOptions, plan: dl.ReplayPlan, progress: _Bar
) -> dl.ReplayCounts:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await dl.run_replay(options, plan, progress=progress, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@dlq.command("replay")
@_filters
@_target_options
@click.option("--rate", metavar="N/s", help="Most records a second (500, 500/s, 30000/m).")
@click.option("--max", "max_records", type=click.IntRange(1), help="Send at most N this run.")
@click.option(
    "--restart", is_flag=True, help="Forget this replay's progress: select from the start again."
)
@click.pass_context
def replay(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    stages: tuple[str, ...],
    bots: tuple[str, ...],
    since: str | None,
    until: str | None,
    reason: str | None,
    to: str | None,
    max_replays: int | None,
    dry_run: bool,
    yes: bool,
    rate: str | None,
    max_records: int | None,
    restart: bool,
) -> None:
    """Send dead letters back to their original topic (or --to), once each.

    The same command run again continues where it stopped (its progress is kept by a
    consumer group named after the arguments), and sends nothing twice.
    """
    settings = settings_of(ctx)
    config = settings.streams
    selection = _selection(stages, bots, since, until, reason)
    per_s = None
    if rate is not None:
        try:
            per_s = parse_rate(rate)
        except ValueError:
            raise BotwatchError(
                f"error: --rate {rate!r} is not a rate.\n  fix: write it like 500, 500/s or "
                "30000/m (more than 0)."
            ) from None
    replays = _max_replays(settings, max_replays)
    # The times as written: the same command continues an interrupted run, which keeps the
    # times it resolved ("--since 3m" re-read later would be another window).
    identity = {
        "stages": sorted(stages),
        "bots": sorted(bots),
        "since": since,
        "until": until,
        "reason": reason,
        "to": to,
        "max_replays": replays,
    }
    group = replay_group(config.dlq_topic, identity)
    options = dl.ReplayOptions(
        bootstrap=config.kafka_bootstrap,
        dlq_topic=config.dlq_topic,
        selection=selection,
        group=group,
        to=to,
        max_replays=replays,
        rate=per_s,
        max_records=max_records,
        restart=restart,
    )
    # Counted first (a read of the whole window) only for a dry run, or to ask: when more
    # than the threshold could be sent and --yes was not given. Else the run decides as it
    # reads, and the window's size bounds what it sends.
    threshold = config.dlq_confirm_above
    plan = _run(
        settings,
        dl.plan_replay(options, count=lambda bound: dry_run or (not yes and bound > threshold)),
    )
    held = plan.actions["quarantine"] + plan.actions["skip"]
    if dry_run:
        click.echo("dry run: nothing is sent")
        _print_plan(plan, group, settings)
        ctx.exit(EXIT_NOT_ALL if held else 0)
    if not plan.total:
        _nothing(selection, group)
        if not restart:
            _run(settings, dl.run_replay(options, plan))  # records the window as done
        ctx.exit(0)
    if plan.counted and not _confirm(plan.to_send, threshold, yes):
        click.echo("nothing sent")
        ctx.exit(EXIT_STOPPED)
    bar = _Bar(plan.total)
    try:
        counts = _run(settings, _replay(options, plan, bar))
    finally:
        bar.end()
    if not counts.selected and not counts.stopped_early:
        _nothing(selection, group)
        ctx.exit(0)
    _report(counts)
    if counts.stopped_early:
        click.echo("stopped before the end: run the same command again to continue")
        ctx.exit(EXIT_STOPPED)
    ctx.exit(EXIT_NOT_ALL if counts.quarantined or counts.skipped else 0)


def _nothing(selection: Selection, group: str) -> None:
    click.echo(f"nothing to replay ({selection.describe()}); consumer group {group}")


def _report(counts: dl.ReplayCounts) -> None:
    targets = ", ".join(f"{n:,} to {t}" for t, n in sorted(counts.sent_by_target.items()))
    where = f" ({targets})" if targets else ""
    click.echo(f"sent {counts.sent:,}{where} in {counts.seconds:.1f} s ({counts.rate:,.0f}/s)")
    if counts.already_sent:
        click.echo(f"already sent by the interrupted run: {counts.already_sent:,}")
    if counts.copies:
        click.echo(
            f"not sent: {counts.copies:,} copies of a failure whose dead letter was written "
            "twice (its batch was redone); one of each was sent"
        )
    if counts.quarantined:
        click.echo(
            f"quarantined: {counts.quarantined:,} (replayed --max-replays times already; they "
            "stay on the dead-letter topic: `botwatch dlq list`)"
        )
    if counts.skipped:
        reasons = "; ".join(f"{n} {why}" for why, n in counts.skipped_why.most_common())
        click.echo(f"skipped: {counts.skipped:,} ({reasons})")
    _too_large(
        counts.too_large,
        "then send them with `botwatch dlq export` and `dlq import` (this replay has moved "
        "past them)",
    )
