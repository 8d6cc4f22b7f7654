"""`botwatch generate`: synthetic bot traffic into Kafka, with an exact ground-truth file."""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from botwatch.commands.common import BotwatchError, settings_of
from producers.config import COMPRESSIONS
from producers.generator import (
    LATE_BEHIND_MS,
    UNPACED_EVENT_RATE,
    Generator,
    GeneratorConfig,
    GeneratorError,
    Incident,
    Truth,
)
from producers.loadgen import LoadError, LoadOptions, LoadStats, install_stop_signals, send
from producers.loadgen import write_truth as write_truth_file
from schemas import timestamp_ms

EXIT_INTERRUPTED = 130

_EPILOG = f"""\b
Record i of the run carries the event time START + i / RATE, so paced runs track the
wall clock. --rate 0 (or --no-pacing) sends as fast as the broker takes it; with --rate 0
event time advances at {UNPACED_EVENT_RATE:,.0f} events/s.

\b
Late events are at least {LATE_BEHIND_MS // 1000} s behind their bot's latest event, so
only a run whose event time goes past START + {LATE_BEHIND_MS // 1000} s has any.

\b
The --truth file (JSON) describes exactly what Kafka acknowledged:
  truth_version, complete (false when interrupted or failed),
  params {{seed, start, rate, bots, records_planned, error_rate, failure_rate,
          malformed, late, incidents, topic, window_size_s, late_behind_s}},
  counts {{records, valid, on_time, late, malformed}},
  bots {{BOT: {{env, host}}}}, late_per_bot {{BOT: n}},
  windows {{BOT: {{WINDOW_START: {{window_start, window_end, window_size_s, count,
          errors, successes, failures, retries, error_rate, failure_rate, levels,
          duration_ms {{count, sum, min, max, mean, p50, p95, p99}}}}}}}}
          (on-time valid events only; percentile = the nearest rank, sorted[ceil(q * n) - 1]),
  event_ids [every valid event, late ones included],
  malformed [{{kind, stage, path, key, partition, offset}}].
"""


@click.command(epilog=_EPILOG)
@click.option(
    "--bots",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Number of synthetic bots (bot-000, bot-001, ...).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1000.0,
    show_default=True,
    help="Records per second (event time and pacing); 0 = as fast as possible.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds of event time to generate (records = duration x rate).",
)
@click.option(
    "--events",
    type=click.IntRange(min=1),
    help="Number of records to send (malformed ones included).",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.02,
    show_default=True,
    help="Share of valid events at level error or critical.",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of finished jobs that fail.",
)
@click.option(
    "--malformed",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of records that are malformed (many kinds, each labelled).",
)
@click.option(
    "--late",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help=f"Share of valid events sent late (>= {LATE_BEHIND_MS // 1000} s behind).",
)
@click.option(
    "--incident",
    "incidents",
    multiple=True,
    metavar="BOT:START:END:ERROR_RATE",
    help="Raise BOT's error rate to ERROR_RATE from START to END seconds "
    "(event time from the run start). Repeatable.",
)
@click.option("--seed", type=int, help="Random seed (default: a random one, reported).")
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the ground truth of what was sent to this JSON file.",
)
@click.option("--topic", help="Events topic [BOTWATCH_EVENTS_TOPIC, default botwatch.events].")
@click.option("--start", help="Event time of the first record, RFC 3339 (default: now).")
@click.option(
    "--no-pacing",
    is_flag=True,
    help="Send as fast as possible; event time still advances at --rate.",
)
@click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    default="none",
    show_default=True,
    help="Kafka batch compression.",
)
@click.pass_context
def generate(
    ctx: click.Context,
    /,
    *,
    bots: int,
    rate: float,
    duration: float | None,
    events: int | None,
    error_rate: float,
    failure_rate: float,
    malformed: float,
    late: float,
    incidents: tuple[str, ...],
    seed: int | None,
    truth_path: Path | None,
    topic: str | None,
    start: str | None,
    no_pacing: bool,
    compression: str,
) -> None:
    """Synthetic bots: jobs, retries, failures, log lines, heartbeats, incidents, bad records."""
    topic = topic or settings_of(ctx).producer.topic
    if (duration is None) == (events is None):
        raise click.UsageError("give exactly one of --duration and --events")
    if duration is not None:
        if rate == 0:
            raise click.UsageError("--duration needs a --rate above 0")
        events = max(1, round(duration * rate))
    assert events is not None
    try:
        start_ms = timestamp_ms(start) if start else int(time.time() * 1000)
    except ValueError:
        raise click.BadParameter(
            f"{start!r} is not an RFC 3339 timestamp with offset", param_hint="--start"
        ) from None
    if seed is None:
        seed = secrets.randbits(32)
    try:
        config = GeneratorConfig(
            start_ms=start_ms,
            bots=bots,
            rate=rate or UNPACED_EVENT_RATE,
            error_rate=error_rate,
            failure_rate=failure_rate,
            malformed=malformed,
            late=late,
            incidents=tuple(Incident.parse(spec) for spec in incidents),
            seed=seed,
        )
    except GeneratorError as exc:
        raise click.UsageError(str(exc)) from None
    options = LoadOptions(
        bootstrap=settings_of(ctx).kafka_bootstrap,
        topic=topic,
        records=events,
        rate=rate,
        pace=not no_pacing and rate > 0,
        compression=None if compression == "none" else compression,
    )
    generator = Generator(config)
    truth = Truth(config, generator) if truth_path is not None else None
    progress = _print_progress if sys.stderr.isatty() else None
    stats, failure = asyncio.run(_run(generator, options, truth, progress))
    if progress is not None:
        click.echo("\r\033[K", nl=False, err=True)
    if truth is not None and truth_path is not None and stats is not None:
        complete = not stats.interrupted and stats.error is None
        write_truth_file(truth_path, truth.as_dict(topic=topic, complete=complete, planned=events))
    if stats is None:
        raise BotwatchError(f"error: {failure}")
    click.echo(_summary(stats, topic, seed, truth_path), err=True)
    if stats.error is not None:
        raise BotwatchError(f"error: sending stopped: {stats.error}")
    if stats.interrupted:
        sys.exit(EXIT_INTERRUPTED)


async def _run(
    generator: Generator,
    options: LoadOptions,
    truth: Truth | None,
    progress: Callable[[LoadStats], None] | None,
) -> tuple[LoadStats | None, str | None]:
    stop = asyncio.Event()
    undo = install_stop_signals(stop)
    try:
        stats = await send(
            generator,
            options,
            truth=truth,
            stop=stop,
            progress=progress,
        )
    except LoadError as exc:
        return None, str(exc)
    finally:
        undo()
    return stats, None


def _print_progress(stats: LoadStats) -> None:
    line = (
        f"\rsent {stats.delivered:,} records  {stats.rate:,.0f}/s  "
        f"elapsed {stats.elapsed_s:,.1f} s\033[K"
    )
    click.echo(line, nl=False, err=True)


def _summary(stats: LoadStats, topic: str, seed: int, truth_path: Path | None) -> str:
    state = "interrupted after" if stats.interrupted else "sent"
    text = (
        f"generate: {state} {stats.delivered:,} records to {topic} in {stats.elapsed_s:,.2f} s "
        f"({stats.rate:,.0f} records/s): {stats.valid:,} valid ({stats.late:,} late), "
        f"{stats.malformed:,} malformed; seed {seed}"
    )
    if truth_path is not None:
        text += f"; truth in {truth_path}"
    return text
