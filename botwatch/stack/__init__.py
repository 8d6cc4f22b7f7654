"""The local single-node stack (Kafka in KRaft mode and OpenSearch) behind `botwatch stack`."""

from botwatch.stack.config import StackConfig
from botwatch.stack.errors import StackError
from botwatch.stack.manager import Stack

__all__ = ["Stack", "StackConfig", "StackError"]
