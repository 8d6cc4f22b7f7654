"""``Notifier``: one alert record fanned out to every configured receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry

from sinks.receivers.alertmanager import AlertmanagerReceiver
from sinks.receivers.base import Alert, Receiver, url_problem
from sinks.receivers.config import ReceiverConfig
from sinks.receivers.payloads import check_alert
from sinks.receivers.slack import SlackReceiver
from sinks.receivers.webhook import WebhookReceiver


class Notifier:
    def __init__(self, receivers: Sequence[Receiver]) -> None:
        names = [r.name for r in receivers]
        if len(set(names)) != len(names):
            raise ValueError(f"receiver names must differ: {names}")
        self.receivers = list(receivers)

    @classmethod
    def from_config(
        cls, config: ReceiverConfig, *, registry: CollectorRegistry | None = None
    ) -> Notifier:
        """A receiver for each URL that is set (none: a notifier that sends nothing).

        Raises ValueError naming the setting of a URL no request could go to: found at start,
        not when the first alert fires and is then retried for ever.
        """
        for name, url in (
            ("BOTWATCH_ALERTMANAGER_URL", config.alertmanager_url),
            ("BOTWATCH_ALERT_WEBHOOK_URL", config.alert_webhook_url),
            ("BOTWATCH_SLACK_WEBHOOK_URL", config.slack_webhook_url),
        ):
            problem = url_problem(url) if url else None
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        receivers: list[Receiver] = []
        if config.alertmanager_url:
            receivers.append(
                AlertmanagerReceiver(config.alertmanager_url, config, registry=registry)
            )
        if config.alert_webhook_url:
            receivers.append(WebhookReceiver(config.alert_webhook_url, config, registry=registry))
        if config.slack_webhook_url:
            receivers.append(SlackReceiver(config.slack_webhook_url, config, registry=registry))
        return cls(receivers)

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` on every receiver; never waits (see ``Receiver.submit``)."""
        check_alert(alert)
        for receiver in self.receivers:
            receiver.submit(alert)

    def restore(self, alerts: Sequence[Alert]) -> None:
        """Firing alerts notified before: receivers that re-send firing alerts take them up."""
        for alert in alerts:
            check_alert(alert)
        for receiver in self.receivers:
            receiver.restore(alerts)

    def refresh(self, alerts: Sequence[Alert]) -> None:
        """Firing alerts as they are now: receivers that re-send them send these next."""
        for receiver in self.receivers:
            receiver.refresh(alerts)

    def withdraw(self, fingerprints: Iterable[str]) -> None:
        """Alerts another worker re-sends now (their partition moved)."""
        gone = list(fingerprints)
        for receiver in self.receivers:
            receiver.withdraw(gone)

    async def start(self) -> None:
        for receiver in self.receivers:
            await receiver.start()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop every receiver; each gets ``grace_s`` to deliver what it holds, concurrently."""
        await asyncio.gather(*(r.stop(grace_s) for r in self.receivers))

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def health(self) -> list[tuple[bool, str]]:
        return [r.health() for r in self.receivers]
