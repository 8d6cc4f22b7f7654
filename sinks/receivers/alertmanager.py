"""Prometheus Alertmanager: alerts pushed to ``/api/v2/alerts``, firing ones re-sent.

Alertmanager expects its clients to re-send an alert for as long as it is active (the
Prometheus docs: "usually on the order of 30 seconds to 3 minutes"). This receiver keeps
every firing alert it was given until its resolved record arrives and re-posts them all
every ``resend_interval_s``, each valid until ``now + 3 * resend_interval_s``: were botwatch
to stop, Alertmanager resolves them by itself after three missed re-sends. A resolved record
is posted with its ``endsAt``.

Several queued records go out in one request (a JSON list), at most one per fingerprint:
the latest, so a firing and a resolved record of one alert never share a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final

from prometheus_client import CollectorRegistry

from sinks.receivers.base import Alert, Receiver, Sleep, Transport, shown_url, utc_now
from sinks.receivers.config import ReceiverConfig
from sinks.receivers.payloads import alertmanager_payload, check_alert

ALERTS_PATH: Final = "/api/v2/alerts"


class AlertmanagerReceiver(Receiver):
    kind: ClassVar[str] = "alertmanager"
    max_batch: ClassVar[int] = 500

    def __init__(
        self,
        url: str,
        config: ReceiverConfig | None = None,
        *,
        name: str | None = None,
        registry: CollectorRegistry | None = None,
        transport: Transport | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        """``url``: Alertmanager's base URL (``/api/v2/alerts`` is appended unless given)."""
        super().__init__(
            url,
            config,
            name=name,
            registry=registry,
            transport=transport,
            sleep=sleep,
            rand=rand,
            now=now,
        )
        if self.config.resend_interval_s <= 0:
            raise ValueError("resend_interval_s must be positive")
        self._active: dict[str, Alert] = {}
        self._resend: deque[Alert] = deque()
        self._resender: asyncio.Task[None] | None = None
        self._resent = False  # the batch ``next_batch`` returned last is a re-send

    @property
    def post_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith(ALERTS_PATH) else base + ALERTS_PATH

    @property
    def display_url(self) -> str:
        return shown_url(self.post_url)  # its own API's path, whole

    @property
    def active(self) -> list[Alert]:
        """The firing alerts being re-sent, in the order they started firing."""
        return list(self._active.values())

    def body(self, batch: list[Alert]) -> Any:
        return alertmanager_payload(
            batch,
            now=self._now(),
            resend_interval_s=self.config.resend_interval_s,
            generator_url=self.config.external_url,
        )

    def submit(self, alert: Alert) -> None:
        check_alert(alert)
        fingerprint = str(alert["fingerprint"])
        if alert["state"] == "firing":
            self._active[fingerprint] = alert
        else:
            self._active.pop(fingerprint, None)
        super().submit(alert)

    def restore(self, alerts: Sequence[Alert]) -> None:
        """Take up firing alerts notified before this process (or before its partition came
        here), and re-send them now: Alertmanager resolves an alert by itself three re-send
        intervals after it last heard of it."""
        for alert in alerts:
            if alert["state"] == "firing":
                self._active.setdefault(str(alert["fingerprint"]), alert)
        self.resend_now()

    def refresh(self, alerts: Sequence[Alert]) -> None:
        """Take the firing alerts it holds as they are now, for its next re-sends: Alertmanager
        shows what it was last sent, and the firing notification's record had the value then."""
        for alert in alerts:
            fingerprint = str(alert["fingerprint"])
            if alert["state"] == "firing" and fingerprint in self._active:
                self._active[fingerprint] = alert

    def withdraw(self, fingerprints: Iterable[str]) -> None:
        for fingerprint in fingerprints:
            self._active.pop(fingerprint, None)

    def resend_now(self) -> None:
        """Queue a re-send of every firing alert (what the periodic task does)."""
        self._resend = deque(self._active.values())
        if self._resend:
            self._wake()

    def lost_if_stopped(self, batch: list[Alert]) -> list[Alert]:
        """A re-send is not lost: the next owner of the alerts' partitions re-sends them."""
        return [] if self._resent else batch

    def next_batch(self) -> list[Alert]:
        self._resent = False
        if self._resend:
            # A resolved record that arrived since the re-send was planned wins; a record
            # refreshed since then goes in the planned one's place.
            batch: list[Alert] = []
            while self._resend and len(batch) < self.max_batch:
                current = self._active.get(str(self._resend.popleft()["fingerprint"]))
                if current is not None:
                    batch.append(current)
            if batch:
                self._resent = True
                return batch
        taken = super().next_batch()
        latest: dict[str, Alert] = {}
        for alert in taken:
            fingerprint = str(alert["fingerprint"])
            latest.pop(fingerprint, None)  # keep queue order by the latest record's place
            latest[fingerprint] = alert
        return list(latest.values())

    async def start(self) -> None:
        await super().start()
        if self._resender is None:
            self._resender = asyncio.create_task(self._resend_loop(), name="alertmanager-resend")

    async def stop(self, grace_s: float | None = None) -> None:
        resender, self._resender = self._resender, None
        if resender is not None:
            resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resender
        self._resend.clear()
        await super().stop(grace_s)

    async def _resend_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.resend_interval_s)
            self.resend_now()
