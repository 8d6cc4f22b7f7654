"""`botwatch setup`: topics, index templates and retention, each safe to run again."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import click

from botwatch.commands.common import (
    BotwatchError,
    kafka_unreachable,
    partitions_differ,
    settings_of,
)
from sinks.config import SinkConfig, display_url
from sinks.retention import has_ism, install_ism_policies, retention_days
from sinks.templates import install_templates, update_mappings

KAFKA_TIMEOUT_S = 30.0


def opensearch_client(config: SinkConfig) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[config.opensearch_url], timeout=config.request_timeout_s)


def opensearch_unreachable(config: SinkConfig, exc: Exception) -> BotwatchError:
    cause = re.search(r"\[Errno -?\d+\] [^)\]]*|timed out|[Tt]imeout", str(exc))
    return BotwatchError(
        f"error: OpenSearch at {display_url(config.opensearch_url)} is not reachable "
        f"({cause.group(0) if cause else type(exc).__name__}).\n"
        "  fix: start it (`botwatch stack up`) or point BOTWATCH_OPENSEARCH_URL at it."
    )


@click.command()
@click.pass_context
def setup(ctx: click.Context) -> None:
    """Create the Kafka topics, index templates and retention policies (idempotent)."""
    from aiokafka.errors import KafkaError
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

    from streams.app import topic_specs
    from streams.topics import PartitionCountError, ensure_topics

    settings = settings_of(ctx)
    streams, sink = settings.streams, settings.sink

    specs = topic_specs(streams)
    try:
        created = asyncio.run(
            asyncio.wait_for(ensure_topics(streams.kafka_bootstrap, specs), KAFKA_TIMEOUT_S)
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        raise kafka_unreachable(streams.kafka_bootstrap, exc) from None
    except PartitionCountError as exc:
        raise partitions_differ(exc, streams.app_id) from None
    for spec in specs:
        if not spec.create:
            continue  # the worker's own changelog: faust makes it
        what = "created" if spec in created else "exists: "
        plural = "" if spec.partitions == 1 else "s"
        click.echo(f"topic {what} {spec.name} ({spec.partitions} partition{plural})")

    client = opensearch_client(sink)
    try:
        for name in install_templates(client, sink):
            click.echo(f"index template installed: {name}")
        for problem in update_mappings(client, sink):
            click.echo(
                f"warning: existing indices could not take the current fields: {problem}\n"
                "  (a document holding a field an index lacks is refused there; an index "
                "made by hand with other field types, or a read-only one, does this)",
                err=True,
            )
        days = retention_days(sink)
        if has_ism(client):
            for policy, outcome in install_ism_policies(client, sink).items():
                click.echo(f"ISM policy {outcome}: {policy}")
        else:
            click.echo(
                "retention: the ISM plugin is not installed; a running worker deletes expired "
                "indices once a day (BOTWATCH_RETENTION_SWEEP_S), and `botwatch retention "
                "run` does it on demand (from cron where no worker runs)"
            )
        ages = ", ".join(f"{family} {n} d" for family, n in days.items())
        click.echo(f"retention ({sink.index_prefix}-*): {ages}")
    except OpenSearchConnectionError as exc:
        raise opensearch_unreachable(sink, exc) from None
    finally:
        client.close()
