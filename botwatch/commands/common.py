"""What every command shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any, Final

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


def duration_ms(text: str, option: str) -> int:
    """``text`` of ``option`` (``90s``, ``15m``, ``1h30m``) in milliseconds, or an error."""
    from streams.alerts import parse_duration  # here: most commands never need it

    try:
        ms = parse_duration(text)
    except ValueError:
        raise BotwatchError(
            f"error: {option} {text!r} is not a duration.\n"
            "  fix: write it like 90s, 15m, 2h, 1h30m or 3d."
        ) from None
    if ms <= 0:
        raise BotwatchError(f"error: {option} must be longer than 0, got {text!r}.")
    return ms


def kafka_unreachable(bootstrap: str, exc: BaseException) -> BotwatchError:
    """The error every command gives when the broker does not answer."""
    return BotwatchError(
        f"error: Kafka at {bootstrap} is not reachable ({exc or type(exc).__name__}).\n"
        "  fix: start it (`botwatch stack up`) or point BOTWATCH_KAFKA_BOOTSTRAP at it."
    )


def partitions_differ(exc: BaseException, app_id: str) -> BotwatchError:
    """The error of ``setup`` and ``worker`` when the events topic or the state table has
    another partition count than BOTWATCH_PARTITIONS."""
    return BotwatchError(
        f"error: {exc}. The worker keeps each bot's windows in a table partitioned like the "
        "events topic, and would never read an events partition past the table's.\n"
        "  fix: set BOTWATCH_PARTITIONS to the events topic's partition count. If the state "
        f"table of BOTWATCH_APP_ID={app_id} (its -windows-changelog topic) has another count, "
        "it was made with another BOTWATCH_PARTITIONS: use that, or a new BOTWATCH_APP_ID "
        "(new windows, and a new consumer group that reads the events topic from its start). "
        "Partitions cannot be added to the events topic of a running pipeline."
    )


# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators, escaped.
_CONTROLS: Final = {
    c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}
_CONTROLS_BUT_LINES: Final = {c: e for c, e in _CONTROLS.items() if chr(c) not in "\n\t"}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with its control characters escaped (``\\x1b``, ``\\n``); ``lines`` keeps
    line breaks and tabs.

    What a terminal shows comes from producers (an error type, a bot id, a record):
    an escape sequence in it cleared the screen or coloured the rest, and a line break
    or carriage return forged a line of its own."""
    return text.translate(_CONTROLS_BUT_LINES if lines else _CONTROLS)


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Rows under a header, each column as wide as its widest cell (``printable``)."""
    shown = [[printable(str(cell)) for cell in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in shown) for i in range(len(header))]
    for row in shown:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        click.echo("  ".join(cells).rstrip())
