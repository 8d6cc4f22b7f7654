"""`botwatch alerts list|history|silence|unsilence|silences`: what on-call staff run.

``list`` asks the running workers (their ``/alerts`` endpoint): only they know what is
pending. ``history`` searches the ``<prefix>-alerts-*`` indices. Silences are records on the
compacted silences topic, which every worker follows.
"""

from __future__ import annotations

import asyncio
import fnmatch
import getpass
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import click
import orjson

from botwatch.commands.common import (
    BotwatchError,
    duration_ms,
    kafka_unreachable,
    print_table,
    settings_of,
)
from botwatch.commands.setup import opensearch_client, opensearch_unreachable
from botwatch.settings import Settings
from sinks.config import display_url
from sinks.receivers.payloads import format_number
from streams.alerts import RulesError, Silence, Silences, format_duration, load_rules
from streams.windows import rfc3339


@click.group()
def alerts() -> None:
    """Alerts: what fires now, what fired before, and silences."""


# -- list ---------------------------------------------------------------------------------


def fetch_active(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """One worker's ``/alerts`` document."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/alerts", timeout=timeout_s) as resp:  # noqa: S310 (an operator-given URL)
        data: dict[str, Any] = orjson.loads(resp.read())
    return data


@alerts.command("list")
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="URL",
    help="A worker's web address (repeat for each worker of the group); default: "
    "http://BOTWATCH_WEB_HOST:BOTWATCH_WEB_PORT.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the alert records as JSON lines.")
@click.pass_context
def list_alerts(ctx: click.Context, workers: tuple[str, ...], as_json: bool) -> None:
    """Alerts pending and firing now, from the running workers."""
    config = settings_of(ctx).streams
    urls = list(workers) or [f"http://{config.web_host}:{config.web_port}"]
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for url in urls:
        try:
            found += fetch_active(url)["alerts"]
        except urllib.error.HTTPError as exc:
            missing.append(f"the worker at {url} answered /alerts with HTTP {exc.code}")
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            missing.append(f"no worker answered at {url}/alerts ({exc})")
    if len(missing) == len(urls):
        raise BotwatchError(
            "error: " + "; ".join(missing) + ".\n"
            "  fix: start `botwatch worker` (its log says why one answers with an error), or "
            "pass each worker's address with --worker URL."
        )
    # What the others answered is still worth seeing: the partitions of the one that did
    # not answer are missing from it, which is said, and the exit status is 1.
    _list(found, as_json)
    for what in missing:
        click.echo(f"warning: {what}: the alerts of its partitions are not listed", err=True)
    if missing:
        ctx.exit(1)


def _list(found: list[dict[str, Any]], as_json: bool) -> None:
    found.sort(key=lambda a: (a["state"] != "firing", a["starts_at"], a["rule"], a["bot_id"]))
    if as_json:
        for alert in found:
            click.echo(orjson.dumps(alert))
        return
    if not found:
        click.echo("no alert is pending or firing")
        return
    rows = [
        (
            a["state"]
            + (" (held)" if a.get("held") else "")
            + (" (silenced)" if a.get("silenced") else ""),
            a["severity"],
            a["rule"],
            a["bot_id"],
            format_number(a["value"]),
            format_number(a["threshold"]),
            a["window"],
            a["starts_at"],
        )
        for a in found
    ]
    header = ("STATE", "SEVERITY", "RULE", "BOT", "VALUE", "THRESHOLD", "WINDOW", "SINCE")
    print_table(*_with_error_types(found, rows, header))


def _with_error_types(
    records: Sequence[dict[str, Any]], rows: Sequence[tuple[Any, ...]], header: tuple[str, ...]
) -> tuple[Sequence[tuple[Any, ...]], tuple[str, ...]]:
    """An ERROR TYPE column after BOT when an alert has one (a rule per error type): two
    alerts of one rule and bot otherwise print as the same line."""
    types = [(r.get("labels") or {}).get("error_type") for r in records]
    if not any(types):
        return rows, header
    at = header.index("BOT") + 1
    return (
        [(*row[:at], kind or "-", *row[at:]) for row, kind in zip(rows, types, strict=True)],
        (*header[:at], "ERROR TYPE", *header[at:]),
    )


# -- history ------------------------------------------------------------------------------


def history_query(
    since_ms: int, bot: str | None, rule: str | None, state: str | None, limit: int
) -> dict[str, Any]:
    """Alerts that started, or ended, within the period; newest first."""
    since = rfc3339(since_ms)
    filters: list[dict[str, Any]] = [
        {
            "bool": {
                "should": [
                    {"range": {"starts_at": {"gte": since}}},
                    {"range": {"ends_at": {"gte": since}}},
                ],
                "minimum_should_match": 1,
            }
        }
    ]
    for field, value in (("bot_id", bot), ("rule", rule), ("state", state)):
        if value and field != "state" and ("*" in value or "?" in value):
            filters.append({"wildcard": {field: {"value": value}}})  # as silences take them
        elif value:
            filters.append({"term": {field: value}})
    return {
        "size": limit,
        "query": {"bool": {"filter": filters}},
        "sort": [{"starts_at": "desc"}, {"fingerprint": "asc"}],
    }


@alerts.command("history")
@click.option("--since", default="24h", show_default=True, help="How far back (e.g. 1h, 7d).")
@click.option("--bot", help="Only this bot ('*' and '?' match any characters: 'invoice-*').")
@click.option("--rule", help="Only this rule ('*' and '?' as for --bot).")
@click.option(
    "--state",
    type=click.Choice(["firing", "resolved"]),
    help="Only incidents in this state now: firing (not resolved yet) or resolved. An "
    "incident is one record, its last state: a resolved one shows the value it resolved at.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the alert records as JSON lines.")
@click.pass_context
def history(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    since: str,
    bot: str | None,
    rule: str | None,
    state: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Alerts that fired (and resolved) within --since, from the alerts indices."""
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

    since_ms = int(time.time() * 1000) - duration_ms(since, "--since")
    config = settings_of(ctx).sink
    client = opensearch_client(config)
    try:
        body = history_query(since_ms, bot, rule, state, limit)
        reply = client.search(
            index=f"{config.index_prefix}-alerts-*", body=body, ignore_unavailable=True
        )
    except OpenSearchConnectionError as exc:
        raise opensearch_unreachable(config, exc) from None
    finally:
        client.close()
    records = [hit["_source"] for hit in reply["hits"]["hits"]]
    if as_json:
        for record in records:
            click.echo(orjson.dumps(record))
        return
    if not records:
        if not reply.get("_shards", {}).get("total"):
            # No index matched: a prefix that is not this pipeline's, or no alert ever.
            click.echo(
                f"no alert: no index matches {config.index_prefix}-alerts-* on OpenSearch at "
                f"{display_url(config.opensearch_url)} (BOTWATCH_INDEX_PREFIX). A worker "
                "makes one with the first alert it records."
            )
            return
        click.echo(f"no alert in the last {since}")
        return
    rows = [
        (
            r["state"],
            r["severity"],
            r["rule"],
            r["bot_id"],
            format_number(r["value"]),
            r["window"],
            r["starts_at"],
            r.get("ends_at") or "-",
        )
        for r in records
    ]
    header = ("STATE", "SEVERITY", "RULE", "BOT", "VALUE", "WINDOW", "STARTS", "ENDS")
    print_table(*_with_error_types(records, rows, header))


# -- silences -----------------------------------------------------------------------------


def _read_silences(settings: Settings) -> Silences:
    from aiokafka.errors import KafkaError

    from streams import silences as topic

    config = settings.streams
    try:
        return asyncio.run(topic.read_all(config.kafka_bootstrap, config.silences_topic))
    except LookupError as exc:
        raise BotwatchError(f"error: {exc}") from None
    except (KafkaError, OSError, TimeoutError) as exc:
        raise kafka_unreachable(settings.streams.kafka_bootstrap, exc) from None


def _publish(settings: Settings, records: list[tuple[bytes, bytes | None]]) -> None:
    from aiokafka.errors import KafkaError

    from streams import silences as topic
    from streams.app import topic_specs
    from streams.topics import ensure_topics

    config = settings.streams
    spec = [s for s in topic_specs(config) if s.name == config.silences_topic]
    try:
        asyncio.run(ensure_topics(config.kafka_bootstrap, spec))
        asyncio.run(topic.publish(config.kafka_bootstrap, config.silences_topic, records))
    except (KafkaError, OSError) as exc:
        raise kafka_unreachable(settings.streams.kafka_bootstrap, exc) from None


def _silence_row(s: Silence, now_ms: int) -> tuple[str, ...]:
    left_ms = s.until_ms - now_ms
    # Whole seconds, rounded up: "1h59m56s", not "1h59m55s725ms" (nor "0s" while in force).
    left = format_duration(math.ceil(left_ms / 1000) * 1000) if left_ms > 0 else "expired"
    return (s.id, s.rule, s.bot, rfc3339(s.until_ms), left, s.created_by, s.reason)


@alerts.command("silence")
@click.option("--rule", required=True, help="Rule name (a glob: '*' for every rule).")
@click.option("--bot", required=True, help="Bot id (a glob: 'invoice-*', '*').")
@click.option("--for", "for_", required=True, help="How long (e.g. 30m, 2h, 1d).")
@click.option("--reason", required=True, help="Why: shown in `alerts silences`.")
@click.option("--by", "created_by", default=None, help="Who (default: the login name).")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The rules file the workers run with (their --rules), to check that --rule matches "
    "one of them [BOTWATCH_ALERT_RULES]; default: the rules shipped with botwatch.",
)
@click.pass_context
def silence(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context,
    rule: str,
    bot: str,
    for_: str,
    reason: str,
    created_by: str | None,
    rules_file: str | None,
) -> None:
    """Hold back notifications of RULE for BOT; alerts still fire and are recorded."""
    from streams import silences as topic

    settings = settings_of(ctx)
    now_ms = int(time.time() * 1000)
    until_ms = now_ms + duration_ms(for_, "--for")
    if not reason.strip():
        raise BotwatchError("error: --reason is empty.\n  fix: say why, for whoever looks next.")
    try:
        made = Silences().add(
            rule,
            bot,
            until_ms=until_ms,
            reason=reason,
            created_by=created_by or getpass.getuser(),
            now_ms=now_ms,
        )
    except ValueError as exc:
        raise BotwatchError(
            f"error: {exc}.\n  fix: give --rule and --bot a name or a glob, and a --for above 0."
        ) from None
    _publish(settings, [topic.encode(made)])
    click.echo(f"silence {made.id}: rule {rule!r}, bot {bot!r} until {rfc3339(until_ms)}")
    unknown = _no_rule_matches(rule, rules_file or settings.streams.rules_file or None)
    if unknown:
        click.echo(unknown, err=True)


def _no_rule_matches(pattern: str, rules_file: str | None) -> str:
    """A warning when ``pattern`` matches no rule of the rules this machine's workers load
    (a typo silences nothing); "" when one matches, or the rules cannot be read here."""
    try:
        names = [r.name for r in load_rules(rules_file)]
    except (RulesError, OSError):
        return ""
    if any(fnmatch.fnmatchcase(name, pattern) for name in names):
        return ""
    where = rules_file or "the default rules"
    return (
        f"warning: --rule {pattern!r} matches no rule of {where} ({', '.join(names)}); "
        "the silence is kept, for workers with other rules"
        + ("" if rules_file else " (give their file with --rules to check against it)")
        + ". `alerts unsilence` ends it."
    )


@alerts.command("unsilence")
@click.argument("silence_id")
@click.pass_context
def unsilence(ctx: click.Context, silence_id: str) -> None:
    """End the silence SILENCE_ID now (see `alerts silences` for the ids)."""
    settings = settings_of(ctx)
    known = {s.id: s for s in _read_silences(settings)}
    if silence_id not in known:
        ids = ", ".join(sorted(known)) or "none"
        raise BotwatchError(
            f"error: no silence has the id {silence_id!r} (silences known: {ids}).\n"
            "  fix: copy the id from `botwatch alerts silences`."
        )
    _publish(settings, [(silence_id.encode(), None)])
    click.echo(f"silence {silence_id} ended")


@alerts.command("silences")
@click.option("--all", "show_all", is_flag=True, help="Also list silences that have expired.")
@click.pass_context
def list_silences(ctx: click.Context, show_all: bool) -> None:
    """The silences in force (with --all, also expired ones not yet compacted away)."""
    now_ms = int(time.time() * 1000)
    held = [s for s in _read_silences(settings_of(ctx)) if show_all or s.until_ms > now_ms]
    if not held:
        click.echo("no silence is in force")
        return
    rows = [_silence_row(s, now_ms) for s in held]
    print_table(rows, ("ID", "RULE", "BOT", "UNTIL", "LEFT", "BY", "REASON"))
