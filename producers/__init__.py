"""What bots import: the event producer SDK, the logging handler and the load generator.

from producers import BotLogger
bot = BotLogger("invoice-bot")
bot.info("invoice sent", invoice=42)
with bot.job("job-17") as job:
    ...
"""

from producers.config import ProducerConfig
from producers.handler import BotwatchHandler
from producers.ids import uuid7
from producers.logger import AsyncBotLogger, AsyncJob, BotLogger, Job
from producers.producer import AsyncProducer, SyncProducer
from producers.stats import BotwatchWarning

__all__ = [
    "AsyncBotLogger",
    "AsyncJob",
    "AsyncProducer",
    "BotLogger",
    "BotwatchHandler",
    "BotwatchWarning",
    "Job",
    "ProducerConfig",
    "SyncProducer",
    "uuid7",
]
