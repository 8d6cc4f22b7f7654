"""`botwatch retention run`: delete the dated indices past their age (where ISM is absent)."""

from __future__ import annotations

import click

from botwatch.commands.common import settings_of
from botwatch.commands.setup import opensearch_client, opensearch_unreachable
from sinks.retention import run_retention


@click.group()
def retention() -> None:
    """Index retention: events 90 days, error events 365, stats 400, alerts 400, dead letters 30."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="List the expired indices, delete nothing.")
@click.pass_context
def run(ctx: click.Context, dry_run: bool) -> None:
    """Delete every <prefix>-<family>-YYYY.MM.DD (or -YYYY.MM) index past its family's
    retention."""
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

    config = settings_of(ctx).sink
    client = opensearch_client(config)
    try:
        expired = run_retention(client, config, dry_run=dry_run)
    except OpenSearchConnectionError as exc:
        raise opensearch_unreachable(config, exc) from None
    finally:
        client.close()
    verb, done = ("would delete", "to delete") if dry_run else ("deleted", "deleted")
    for e in expired:
        click.echo(
            f"{verb} {e.index} (family {e.family}, {e.age_days} days old, keep {e.keep_days})"
        )
    click.echo(f"{len(expired)} expired index(es) {done}" if expired else "nothing expired")
