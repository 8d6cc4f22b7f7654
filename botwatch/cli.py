"""The `botwatch` command line: thin wiring of settings to the packages that do the work."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from botwatch.settings import Settings, SettingsError, describe_settings
from botwatch.stack import Stack, StackError


def _settings_epilog() -> str:
    lines = ["\b", "Settings (environment variable, default):"]
    for env, default, help_text in describe_settings():
        lines.append(f"  {env} (default: {default or 'unset'})")
        lines.append(f"      {help_text}")
    return "\n".join(lines)


class BotwatchError(click.ClickException):
    """An error the user can act on: printed without a traceback, exit code 1."""

    def format_message(self) -> str:
        return self.message


@click.group(epilog=_settings_epilog(), context_settings={"max_content_width": 100})
@click.option("--kafka-bootstrap", help="Kafka bootstrap servers [BOTWATCH_KAFKA_BOOTSTRAP].")
@click.option("--opensearch-url", help="OpenSearch base URL [BOTWATCH_OPENSEARCH_URL].")
@click.option(
    "--home",
    type=click.Path(path_type=__import__("pathlib").Path),
    help="Stack cache and data directory [BOTWATCH_HOME].",
)
@click.version_option(package_name="botwatch")
@click.pass_context
def main(ctx: click.Context, **overrides: Any) -> None:
    """botwatch: observability for automation bots (Kafka -> Faust -> OpenSearch)."""
    try:
        ctx.obj = Settings.load(**overrides)
    except SettingsError as exc:
        raise BotwatchError(str(exc)) from None


@main.group()
def stack() -> None:
    """The local single-node Kafka (KRaft) and OpenSearch, on loopback, without Docker."""


def _stack(ctx: click.Context) -> Stack:
    settings: Settings = ctx.obj
    return Stack(settings.stack_config())


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
