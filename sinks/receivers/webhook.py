"""A generic webhook: one POST per alert record, in Alertmanager's webhook format (version 4).

Anything written for Alertmanager's ``webhook_config`` (pagers, chat bridges, ticketing)
reads these notifications unchanged; ``status`` is ``firing`` or ``resolved``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sinks.receivers.base import Alert, Receiver
from sinks.receivers.payloads import webhook_payload


class WebhookReceiver(Receiver):
    kind: ClassVar[str] = "webhook"

    @property
    def post_url(self) -> str:
        return self.url

    def body(self, batch: list[Alert]) -> Any:
        return webhook_payload(
            batch,
            receiver=self.name,
            external_url=self.config.external_url,
            generator_url=self.config.external_url,
        )
