"""``BotwatchHandler``: a bot that already logs with the standard library publishes its records
with one line, ``logging.getLogger().addHandler(BotwatchHandler("invoice-bot"))``.

Mapping: the level by threshold (DEBUG -> debug ... CRITICAL -> critical), ``exc_info`` into
``error``, the logger name and every ``extra`` field into ``meta``; ``extra`` keys named like
contract fields (``status``, ``job_id``, ``duration_ms``, ``retry_count``) become those fields.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from producers.config import ProducerConfig
from producers.events import error_info
from producers.logger import BotLogger

__all__ = ["BotwatchHandler", "level_name"]

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
# Our own machinery logs from the sender thread; publishing that would feed back into itself.
# These loggers and their children (``kafka.conn``), not a bot's ``kafka_sync`` or ``kafkaesque``.
_IGNORED_LOGGERS = frozenset({"aiokafka", "kafka", "producers", "asyncio"})


def _ignored(name: str) -> bool:
    return name.partition(".")[0] in _IGNORED_LOGGERS


def level_name(levelno: int) -> str:
    """The event level of a stdlib level number (custom levels fall to the one below)."""
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class BotwatchHandler(logging.Handler):
    """Publishes log records as botwatch events of one bot; never raises into the caller."""

    def __init__(
        self,
        bot: str | BotLogger,
        level: int = logging.NOTSET,
        *,
        config: ProducerConfig | None = None,
    ) -> None:
        super().__init__(level)
        self._owns_bot = not isinstance(bot, BotLogger)
        self.bot = BotLogger(bot, config=config) if isinstance(bot, str) else bot
        self._sender_thread = self.bot.producer.thread_id
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._sender_thread or _ignored(record.name):
            return
        if getattr(self._local, "busy", False):  # a warning raised while publishing
            return
        self._local.busy = True
        try:
            self.bot.events  # noqa: B018 - fail early if the bot was closed
            self._publish(record)
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False

    def _publish(self, record: logging.LogRecord) -> None:
        """``extra`` goes to meta, where a contract field's name sets that field when it takes
        the value (``EventFactory.build``); one it does not take stays meta."""
        meta: dict[str, Any] = {"logger": record.name}
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                meta[key] = value
        error = None
        if record.exc_info and record.exc_info[1] is not None:
            error = error_info(record.exc_info[1])
        message = record.getMessage()
        self.bot.log(level_name(record.levelno), message, error=error, meta=meta)

    def flush(self) -> None:
        self.bot.flush()

    def close(self) -> None:
        """Flush and stop the producer (when this handler created the bot)."""
        if self._owns_bot:
            self.bot.close()
        super().close()
