"""`botwatch worker`: the Faust worker with every agent and its web endpoints."""

from __future__ import annotations

import asyncio
import ipaddress

import click
from prometheus_client import CollectorRegistry, disable_created_metrics

from botwatch.commands.common import (
    BotwatchError,
    kafka_unreachable,
    partitions_differ,
    settings_of,
)
from botwatch.settings import Settings
from schemas.sink import Sink
from sinks.discard import DiscardSink
from sinks.opensearch import OpenSearchSink
from sinks.redact import Redactor


def _sink(name: str, settings: Settings, registry: CollectorRegistry) -> Sink:
    if name == "discard":
        return DiscardSink()
    return OpenSearchSink(settings.sink, registry=registry)


@click.command()
@click.option(
    "--sink",
    "sink_name",
    type=click.Choice(["opensearch", "discard"]),
    default="opensearch",
    show_default=True,
    help="Where events, closed windows and dead letters are indexed; `discard` keeps "
    "nothing (to measure the stream logic alone).",
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Alert rules YAML file [BOTWATCH_ALERT_RULES]; default: the rules shipped with "
    "botwatch (streams/alerts/default_rules.yaml).",
)
@click.option(
    "--loglevel",
    type=click.Choice(["crit", "error", "warn", "info", "debug"]),
    default="warn",
    show_default=True,
)
@click.pass_context
def worker(ctx: click.Context, sink_name: str, rules_file: str | None, loglevel: str) -> None:
    """Validate events, dead-letter failures, close per-bot windows, index everything.

    Evaluates the alert rules over closed windows and events, and notifies the receivers
    that are configured (Alertmanager, webhook, Slack). Serves /health, /ready, /metrics,
    /status and /alerts on BOTWATCH_WEB_HOST:BOTWATCH_WEB_PORT. Stops gracefully on SIGTERM
    or Ctrl-C: the batch in flight is finished and committed.
    """
    from aiokafka.errors import KafkaError

    from sinks.receivers import Notifier
    from streams.alerts import DEFAULT_RULES, RulesError, load_rules
    from streams.app import Worker, topic_specs
    from streams.topics import PartitionCountError, ensure_topics

    settings = settings_of(ctx)
    config = settings.streams
    problems = config.problems()
    if problems:
        raise BotwatchError(
            "error: settings the worker cannot run with, it did not start:\n  "
            + "\n  ".join(problems)
            + "\n  fix: change them (`botwatch --help` lists every setting)."
        )
    _refuse_unusable_port(config.web_host, config.web_port)
    if not listens_on_loopback_only(config.web_host):
        click.echo(
            f"warning: BOTWATCH_WEB_HOST={config.web_host!r}: the web endpoints (/metrics, "
            "/status, /alerts: bot ids, error types) are reachable beyond this machine, "
            "without authentication; put a proxy that authenticates in front of them, or "
            "listen on 127.0.0.1.",
            err=True,
        )
    path = rules_file or config.rules_file or None
    try:
        rules = load_rules(path)
    except RulesError as exc:
        raise BotwatchError(
            f"error: the alert rules are invalid, the worker did not start:\n{exc}\n"
            "  fix: correct the rules file (the README's section on alerts gives the format; "
            f"the default rules, {DEFAULT_RULES}, are an example of each kind)."
        ) from None
    # Each counter once in /metrics, without a ``_created`` series beside it (nothing here
    # reads those, and they doubled what an operator scrolls through).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    try:
        notifier = Notifier.from_config(settings.receivers, registry=registry)
    except ValueError as exc:
        raise BotwatchError(
            f"error: an alert receiver's URL is wrong, the worker did not start: {exc}\n"
            "  fix: set it to the receiver's http:// or https:// URL, or to nothing to turn "
            "that receiver off."
        ) from None
    try:
        created = asyncio.run(ensure_topics(config.kafka_bootstrap, topic_specs(config)))
    except (KafkaError, OSError) as exc:
        raise kafka_unreachable(config.kafka_bootstrap, exc) from None
    except PartitionCountError as exc:
        raise partitions_differ(exc, config.app_id) from None
    for spec in created:
        plural = "" if spec.partitions == 1 else "s"
        click.echo(f"created topic {spec.name} ({spec.partitions} partition{plural})")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    source = path or f"the default rules, {DEFAULT_RULES}"
    click.echo(
        f"alert rules: {len(rules)} from {source}"
        if rules
        else f"alert rules: none in {source}; no alert will fire"
    )
    for receiver in notifier.receivers:
        click.echo(f"alerts go to {receiver.name} at {receiver.display_url}")
    assembled = Worker(
        config,
        _sink(sink_name, settings, registry),
        registry,
        rules=rules,
        notifier=notifier,
        scrub=Redactor(settings.sink.redact_keys).redact_text,
    )
    assembled.run(loglevel)


def listens_on_loopback_only(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only (an empty
    host, like 0.0.0.0, is every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: whatever it resolves to, it is not known to be loopback
        return False


def _refuse_unusable_port(host: str, port: int) -> None:
    """Found here, before the worker joins its group: found by the web task after joining,
    the worker crashed having taken partitions from the others (two rebalances each time
    it was restarted). Probed as the web server binds (every address of the name, an
    empty host as all interfaces, a port in TIME_WAIT as free)."""

    async def probe() -> None:
        server = await asyncio.get_running_loop().create_server(
            asyncio.Protocol, host or None, port
        )
        server.close()
        await server.wait_closed()

    try:
        asyncio.run(probe())
    except OSError as exc:
        raise BotwatchError(
            f"error: the worker cannot serve its web endpoints on {host}:{port} "
            f"({exc.strerror or exc}); it did not start.\n"
            "  fix: stop what listens there (another `botwatch worker`?), or give this one "
            "another BOTWATCH_WEB_PORT (or BOTWATCH_WEB_HOST)."
        ) from None
