"""Slack incoming webhook: one message per alert record (firing, then resolved).

Slack answers 429 with Retry-After when messages come too fast; the wait is honoured,
capped at the retry cap. The webhook URL's path is its secret and never appears in logs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sinks.receivers.base import Alert, Receiver, shown_url
from sinks.receivers.payloads import slack_payload


class SlackReceiver(Receiver):
    kind: ClassVar[str] = "slack"

    @property
    def post_url(self) -> str:
        return self.url

    @property
    def display_url(self) -> str:
        return shown_url(self.url, path_segments=0)

    def body(self, batch: list[Alert]) -> Any:
        (alert,) = batch
        return slack_payload(alert)
