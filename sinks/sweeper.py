"""Retention kept by a running sink: ISM policies installed at start, or expired dated
indices deleted once a day.

Where the ISM plugin is installed its policies delete old indices inside OpenSearch: the
worker installs them at start (as ``botwatch setup`` does, so a worker started without
setup still has retention) and the sweeper deletes nothing. Where it is not (the local
stack), the sweeper is what enforces retention.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from schemas.background import Background
from sinks.config import SinkConfig, display_url
from sinks.retention import has_ism, install_ism_policies, run_retention

log = logging.getLogger("botwatch.retention")

# A failed sweep (OpenSearch down when the worker started, say) is tried again this soon,
# not a whole interval later.
RETRY_S = 60.0


@dataclass(frozen=True)
class Sweep:
    """What one ``sweep_once`` found and did."""

    ism: bool  # the ISM plugin is present: its policies delete, not the sweeper
    policies: list[str] = field(default_factory=list)  # ISM policies created or updated
    deleted: list[str] = field(default_factory=list)  # expired indices deleted


def sweep_once(config: SinkConfig, *, install_policies: bool) -> Sweep:
    """Install the ISM policies (if ``install_policies``) where ISM is present, else delete
    the expired indices; blocking."""
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[config.opensearch_url], timeout=config.request_timeout_s)
    try:
        if has_ism(client):
            if not install_policies:
                return Sweep(True)
            outcomes = install_ism_policies(client, config)
            return Sweep(True, [p for p, outcome in outcomes.items() if outcome != "unchanged"])
        expired = run_retention(client, config, dry_run=False)
        return Sweep(False, deleted=[e.index for e in expired])
    finally:
        client.close()


class RetentionSweeper:
    """Runs ``sweep_once`` at start and then every ``interval_s`` (0: never, not even the
    policy install), off the event loop."""

    def __init__(self, config: SinkConfig, interval_s: float) -> None:
        self.config = config
        self.interval_s = interval_s
        self._loop = Background(self._run, "retention-sweeper")
        self.swept: list[str] = []
        self.policies: list[str] = []

    def start(self) -> None:
        if self.interval_s > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        from opensearchpy.exceptions import (
            AuthenticationException,
            AuthorizationException,
            RequestError,
        )

        # Answers a retry a minute later would get again: no right (401, 403), a bad request.
        refused = (AuthenticationException, AuthorizationException, RequestError)
        retry_s = min(RETRY_S, self.interval_s)
        policies_done = False  # once per start: a policy update makes a new version
        while True:
            try:
                sweep = await asyncio.to_thread(
                    sweep_once, self.config, install_policies=not policies_done
                )
            except refused as exc:  # not for a retry to mend: said once per interval
                log.warning(
                    "retention sweep against %s was refused (%s); not tried again for %g s: "
                    "give the worker's user the right to delete indices and write ISM "
                    "policies, or run `botwatch setup` (ISM) or `botwatch retention run` as a "
                    "user who has it and set BOTWATCH_RETENTION_SWEEP_S=0",
                    display_url(self.config.opensearch_url),
                    exc,
                    self.interval_s,
                )
                policies_done = True  # the start's install was refused: not retried
                await asyncio.sleep(self.interval_s)
                continue
            except Exception as exc:  # OpenSearch down: tried again in retry_s
                log.warning(
                    "retention sweep against %s failed (trying again in %g s): %s",
                    display_url(self.config.opensearch_url),
                    retry_s,
                    failure_text(exc),
                )
                await asyncio.sleep(retry_s)
                continue
            policies_done = policies_done or sweep.ism
            if sweep.policies:
                self.policies.extend(sweep.policies)
                log.info("retention: ISM policies installed or updated: %s", sweep.policies)
            self.swept.extend(sweep.deleted)
            if sweep.deleted:
                log.info(
                    "retention: deleted %d expired index(es): %s", len(sweep.deleted), sweep.deleted
                )
            await asyncio.sleep(self.interval_s)


def failure_text(exc: BaseException) -> str:
    """``exc`` in one statement: opensearch-py's ``ConnectionError`` says its cause twice
    (``ConnectionError(X) caused by: NewConnectionError(X)``), once a minute while the node
    is down."""
    from opensearchpy.exceptions import ConnectionError as ClientConnectionError

    if isinstance(exc, ClientConnectionError) and isinstance(exc.error, str) and exc.error:
        return f"{type(exc.info).__name__ if exc.info else type(exc).__name__}: {exc.error}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
