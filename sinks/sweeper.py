"""The retention sweeper a running sink keeps: expired daily indices deleted once a day.

Where the ISM plugin is installed its policies do this inside OpenSearch and the sweeper
stands aside; where it is not (the local stack), this is what enforces retention.
"""

from __future__ import annotations

import asyncio
import logging

from schemas.background import Background
from sinks.config import SinkConfig, display_url
from sinks.retention import has_ism, run_retention

log = logging.getLogger("botwatch.retention")

# A failed sweep (OpenSearch down when the worker started, say) is tried again this soon,
# not a whole interval later.
RETRY_S = 60.0


def sweep_once(config: SinkConfig) -> list[str]:
    """Delete the expired indices now (blocking); returns their names."""
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[config.opensearch_url], timeout=config.request_timeout_s)
    try:
        if has_ism(client):
            return []
        return [expired.index for expired in run_retention(client, config, dry_run=False)]
    finally:
        client.close()


class RetentionSweeper:
    """Runs ``sweep_once`` at start and then every ``interval_s``, off the event loop."""

    def __init__(self, config: SinkConfig, interval_s: float) -> None:
        self.config = config
        self.interval_s = interval_s
        self._loop = Background(self._run, "retention-sweeper")
        self.swept: list[str] = []

    def start(self) -> None:
        if self.interval_s > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            try:
                deleted = await asyncio.to_thread(sweep_once, self.config)
            except Exception as exc:  # OpenSearch down: tried again in RETRY_S
                log.warning(
                    "retention sweep against %s failed (trying again in %g s): %s",
                    display_url(self.config.opensearch_url),
                    min(RETRY_S, self.interval_s),
                    exc,
                )
                await asyncio.sleep(min(RETRY_S, self.interval_s))
                continue
            self.swept.extend(deleted)
            if deleted:
                log.info("retention: deleted %d expired index(es): %s", len(deleted), deleted)
            await asyncio.sleep(self.interval_s)
