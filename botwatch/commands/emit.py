"""`botwatch emit`: one event from a shell script; exit code 0 only when Kafka acknowledged it."""

from __future__ import annotations

import asyncio
import dataclasses

import click
import orjson

from botwatch.commands.common import BotwatchError, settings_of
from producers.events import EventFactory
from producers.oneshot import DeliveryError, deliver
from schemas import LEVELS, STATUSES


def _parse_meta(pairs: tuple[str, ...]) -> dict[str, object]:
    meta: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="'--meta'")
        if key in meta:
            raise click.BadParameter(
                f"{key!r} is given twice; give each key once", param_hint="'--meta'"
            )
        meta[key] = _meta_value(raw)
    return meta


def _meta_value(raw: str) -> object:
    """``raw`` as JSON when it is JSON (true/false/null, objects, lists, numbers), else as
    text. A number only when it reads back as written: ``1.10`` (a version), ``2e3`` (a
    build) and integers beyond 64 bits stay text rather than become 1.1, 2000.0 or a float."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and orjson.dumps(value) != raw.strip().encode():
        return raw
    return value


@click.command()
@click.option("--bot", "bot_id", required=True, help="Bot id (the Kafka key).")
@click.option("--level", required=True, type=click.Choice(LEVELS), help="Event level.")
@click.option("--message", required=True, help="Event message (cut at 32 KiB).")
@click.option("--status", type=click.Choice(STATUSES), help="Job status.")
@click.option("--job", "job_id", help="Job id.")
@click.option("--duration-ms", type=float, help="Duration in milliseconds (>= 0).")
@click.option("--retry-count", type=int, help="Retries so far (>= 0).")
@click.option(
    "--meta",
    "meta_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Meta field, repeatable; VALUE is parsed as JSON when it is JSON, else kept as text.",
)
@click.option("--topic", help="Events topic [BOTWATCH_EVENTS_TOPIC].")
@click.option(
    "--timeout", default=10.0, show_default=True, type=float, help="Seconds to wait for the ack."
)
@click.pass_context
def emit(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    /,
    bot_id: str,
    level: str,
    message: str,
    status: str | None,
    job_id: str | None,
    duration_ms: float | None,
    retry_count: int | None,
    meta_pairs: tuple[str, ...],
    topic: str | None,
    timeout: float,
) -> None:
    """Publish one event and wait for Kafka to acknowledge it.

    Exit code 0: acknowledged; 1: not delivered (the message says why); 2: invalid input.
    """
    config = settings_of(ctx).producer
    if topic:
        config = dataclasses.replace(config, topic=topic)
    meta = _parse_meta(meta_pairs)
    try:
        factory = EventFactory(bot_id, env=config.env)
        value = factory.build(
            level,
            message,
            status=status,
            job_id=job_id,
            duration_ms=duration_ms,
            retry_count=retry_count,
            meta=meta,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        asyncio.run(deliver(config, factory.key, value, timeout))
    except DeliveryError as exc:
        raise BotwatchError(f"error: {exc}") from None
