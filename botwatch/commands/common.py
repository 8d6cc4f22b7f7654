"""What every command shares."""

from __future__ import annotations

from typing import IO, Any

import click

from botwatch.settings import Settings


class BotwatchError(click.ClickException):
    """An error the user can act on: printed without a traceback, exit code 1."""

    def format_message(self) -> str:
        return self.message

    def show(self, file: IO[Any] | None = None) -> None:
        """``error: <what>`` then the fix: click's own ``Error:`` prefix would double it."""
        message = self.format_message()
        if not message.startswith("error"):
            message = f"error: {message}"
        click.echo(message, file=file, err=file is None)


def settings_of(ctx: click.Context) -> Settings:
    """The settings the top-level group loaded from environment and flags."""
    settings: Settings = ctx.find_root().obj
    return settings
