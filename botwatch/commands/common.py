"""What every command shares."""

from __future__ import annotations

import click

from botwatch.settings import Settings


class BotwatchError(click.ClickException):
    """An error the user can act on: printed without a traceback, exit code 1."""

    def format_message(self) -> str:
        return self.message


def settings_of(ctx: click.Context) -> Settings:
    """The settings the top-level group loaded from environment and flags."""
    settings: Settings = ctx.find_root().obj
    return settings
