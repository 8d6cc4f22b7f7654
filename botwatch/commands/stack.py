"""`botwatch stack up|down|status|logs`: the local Kafka and OpenSearch."""

from __future__ import annotations

import sys

import click
import orjson

from botwatch.commands.common import BotwatchError, settings_of
from botwatch.stack import Stack, StackError


@click.group()
def stack() -> None:
    """The local single-node Kafka (KRaft) and OpenSearch, on loopback, without Docker."""


def _stack(ctx: click.Context) -> Stack:
    return Stack(settings_of(ctx).stack_config())


@stack.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Fetch (first time), start and wait for Kafka and OpenSearch. A no-op when already up."""
    try:
        _stack(ctx).up(report=click.echo)
    except StackError as exc:
        raise BotwatchError(f"error: {exc}") from None


@stack.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the processes `stack up` started (graceful, then forceful). Data is kept."""
    _stack(ctx).down(report=click.echo)


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Versions, ports, pids, health and data directories. Exit code 1 unless all healthy."""
    statuses = _stack(ctx).status()
    if as_json:
        payload = [
            {
                "name": s.name,
                "version": s.version,
                "pid": s.pid,
                "ports": s.ports,
                "healthy": s.health.ok,
                "health": s.health.summary,
                "data_dir": str(s.data_dir),
                "log_file": str(s.log_file),
            }
            for s in statuses
        ]
        click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        for s in statuses:
            mark = "healthy" if s.health.ok else "DOWN"
            ports = ", ".join(f"{role} {port}" for role, port in s.ports.items())
            click.echo(f"{s.name} {s.version}: {mark} - {s.health.summary}")
            click.echo(f"  pid:   {s.pid if s.pid else '-'}")
            click.echo(f"  ports: {ports}")
            click.echo(f"  data:  {s.data_dir}")
            click.echo(f"  log:   {s.log_file}")
    if not all(s.health.ok for s in statuses):
        sys.exit(1)


@stack.command()
@click.argument("node", type=click.Choice(["kafka", "opensearch"]))
@click.option("-n", "--lines", default=40, show_default=True, help="How many lines to show.")
@click.pass_context
def logs(ctx: click.Context, node: str, lines: int) -> None:
    """The tail of a node's log."""
    click.echo(_stack(ctx).logs(node, lines), nl=False)
