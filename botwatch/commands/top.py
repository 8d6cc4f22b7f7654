"""`botwatch top`: a live terminal view of per-bot windowed stats.

It reads the window records the workers publish on the stats topic (no OpenSearch and no
worker address needed), from those published ``--since`` ago on, and redraws every
``--interval`` seconds as windows close; ``--once`` prints what is there now and exits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import click
from aiokafka.errors import KafkaError

from botwatch.commands.common import (
    BotwatchError,
    duration_ms,
    kafka_unreachable,
    print_table,
    settings_of,
)
from botwatch.settings import Settings
from streams.deadletters import kafka as dl
from streams.statsview import SORTS, BotRow, Sort, StatsView

_HEADER = ("BOT", "WINDOW (UTC)", "EVENTS", "ERRORS", "FAILED", "RETRIES")
_DURATIONS = ("P50 MS", "P95 MS", "P99 MS")


@click.command()
@click.option(
    "--since",
    default="15m",
    show_default=True,
    help="Windows published this long ago or later (90s, 15m, 2h); the totals cover them.",
)
@click.option("--sort", type=click.Choice(SORTS), default="error-rate", show_default=True,
              help="Order of the bots, by their newest window.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Most bots shown.")  # fmt: skip
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              help="Seconds between redraws.")  # fmt: skip
@click.option("--once", is_flag=True, help="Print the view of what is there now and exit.")
@click.pass_context
def top(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context, since: str, sort: Sort, limit: int, interval: float, once: bool
) -> None:
    """Per-bot windowed stats, live: each bot's newest closed 1-minute window (events, error
    and job failure rates, retries, duration percentiles, late events left out) and its
    totals since --since, from the stats topic. Ctrl-C quits."""
    settings = settings_of(ctx)
    span_ms = duration_ms(since, "--since")

    def draw(view: StatsView) -> None:
        if not once:
            click.clear()
        _show(view, settings, since=since, sort=sort, limit=limit, live=not once)

    if not once:
        click.echo(f"reading {settings.streams.stats_topic} ...")
    try:
        view = asyncio.run(_watch(settings, span_ms, draw, once, interval))
    except KeyboardInterrupt:
        return
    except dl.KafkaUnavailable as exc:
        raise kafka_unreachable(settings.kafka_bootstrap, exc.__cause__ or exc) from None
    except KafkaError as exc:  # the broker went away after the connection was made
        raise kafka_unreachable(settings.kafka_bootstrap, exc) from None
    except dl.TopicMissing as exc:
        raise BotwatchError(
            f"error: {exc} on {settings.kafka_bootstrap}.\n"
            "  fix: run `botwatch setup` (or a worker), or set BOTWATCH_STATS_TOPIC to the "
            "topic the workers publish windows on."
        ) from None
    draw(view)


async def _watch(
    settings: Settings,
    span_ms: int,
    draw: Callable[[StatsView], None],
    once: bool,
    interval: float,
) -> StatsView:
    """Fold the windows published in the last ``span_ms`` into a view; with ``once``, return
    it when every partition is read to the end it had at the start, else draw it every
    ``interval`` seconds from then on (until cancelled), older windows dropped each time."""
    view = StatsView()
    async with dl.consumer(settings.kafka_bootstrap) as c:
        tps = await dl.partitions(c, settings.streams.stats_topic, "stats")
        # The ends first: a partition with nothing since is then sought to an end taken
        # before, and a window published in between is still read.
        ends = await c.end_offsets(tps)
        since_ms = max(0, _now_ms() - span_ms)  # before 1970: from the topic's start
        found = await c.offsets_for_times(dict.fromkeys(tps, since_ms))
        c.assign(tps)
        for tp in tps:
            hit = found.get(tp)
            c.seek(tp, hit.offset if hit is not None else ends[tp])
        caught_up = False
        drawn_at = 0.0
        while True:
            batches = await c.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for record in records:
                    view.add(record.value, record.timestamp)
            if not caught_up:
                caught_up = all([await c.position(tp) >= ends[tp] for tp in tps])
                if caught_up and once:
                    return view
            if caught_up and time.monotonic() - drawn_at >= interval:
                view.forget_before(_now_ms() - span_ms)
                draw(view)
                drawn_at = time.monotonic()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _show(
    view: StatsView, settings: Settings, *, since: str, sort: Sort, limit: int, live: bool
) -> None:
    topic = settings.streams.stats_topic
    updated = f", at {time.strftime('%H:%M:%S')}" if live else ""
    click.echo(f"botwatch top: windows published in the last {since} on {topic}{updated}")
    rows = view.rows(sort, limit)
    if not rows:
        click.echo(
            "no closed windows yet. A window closes about a minute and a half after it starts "
            "(its minute, then the allowed lateness); is a worker running (`botwatch worker`)?"
        )
    else:
        header = (*_HEADER, *_DURATIONS, "LATE", f"EVENTS {since}", f"ERRORS {since}")
        print_table([_cells(row) for row in rows], header)
    if len(view) > len(rows):
        click.echo(f"... and {len(view) - len(rows)} more bots (--limit)")
    if view.skipped:
        click.echo(f"{view.skipped} record(s) on {topic} are not window records: left out")
    if live:
        click.echo("Ctrl-C to quit")


def _cells(row: BotRow) -> list[Any]:
    last = row.last
    start = last["window_start"]
    return [
        row.bot_id,
        f"{start[:10]} {start[11:16]}",
        last["count"],
        _percent(last.get("error_rate")),
        _percent(last.get("failure_rate")),
        last["retries"],
        *(_ms(row.last_duration(name)) for name in ("p50", "p95", "p99")),
        last.get("late_events_excluded", 0),
        row.events,
        _percent(row.error_rate),
    ]


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
