"""The `botwatch` command line: thin wiring of settings to the packages that do the work."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from botwatch.commands import stack as stack_commands
from botwatch.commands.alerts import alerts as alerts_command
from botwatch.commands.common import BotwatchError
from botwatch.commands.demo import demo
from botwatch.commands.dlq import dlq as dlq_command
from botwatch.commands.emit import emit as emit_command
from botwatch.commands.generate import generate as generate_command
from botwatch.commands.retention import retention as retention_command
from botwatch.commands.setup import setup as setup_command
from botwatch.commands.top import top as top_command
from botwatch.commands.worker import worker
from botwatch.settings import Settings, SettingsError, describe_settings


def _settings_epilog() -> str:
    lines = ["\b", "Settings (environment variable, default):"]
    for env, default, help_text in describe_settings():
        lines.append(f"  {env} (default: {default or 'unset'})")
        lines.append(f"      {help_text}")
    return "\n".join(lines)


@click.group(epilog=_settings_epilog(), context_settings={"max_content_width": 100})
@click.option("--kafka-bootstrap", help="Kafka bootstrap servers [BOTWATCH_KAFKA_BOOTSTRAP].")
@click.option("--opensearch-url", help="OpenSearch base URL [BOTWATCH_OPENSEARCH_URL].")
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    help="Stack cache and data directory [BOTWATCH_HOME].",
)
@click.version_option(package_name="botwatch")
@click.pass_context
def main(
    ctx: click.Context,
    /,
    kafka_bootstrap: str | None,
    opensearch_url: str | None,
    home: Path | None,
) -> None:
    """botwatch: observability for automation bots (Kafka -> Faust -> OpenSearch)."""
    # A command says itself what failed and what to do; with no logging set up, Python
    # printed aiokafka's own error lines before it ("Unable connect to ..."). The worker
    # sets up logging: the records still reach its handlers.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    flags = {
        "BOTWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "BOTWATCH_OPENSEARCH_URL": opensearch_url,
        "BOTWATCH_HOME": str(home) if home else None,
    }
    try:
        ctx.obj = Settings.load(flags=flags)
    except SettingsError as exc:
        raise BotwatchError(str(exc)) from None


# Each command group lives in botwatch/commands/; register it here.
main.add_command(stack_commands.stack)
main.add_command(worker)
main.add_command(emit_command)
main.add_command(generate_command)
main.add_command(setup_command)
main.add_command(retention_command)
main.add_command(demo)
main.add_command(alerts_command)
main.add_command(dlq_command)
main.add_command(top_command)
