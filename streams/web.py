"""The worker's own HTTP endpoints: /health, /ready, /metrics, /status, /alerts.

faust's web server stays off (its table and router views would expose state); this small
aiohttp server binds loopback by default and serves only what operators need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], tuple[bool, str]]
StatusReport = Callable[[], dict[str, Any]]


def build_web_app(
    registry: CollectorRegistry,
    readiness: Readiness,
    status: StatusReport,
    alerts: StatusReport | None = None,
) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def ready(_: web.Request) -> web.Response:
        ok, reason = readiness()
        body = {"ready": ok, "reason": reason}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def status_view(_: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(status(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS),
            content_type="application/json",
        )

    async def alerts_view(_: web.Request) -> web.Response:
        assert alerts is not None
        return web.Response(
            body=orjson.dumps(alerts(), option=orjson.OPT_INDENT_2),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status_view)
    if alerts is not None:
        app.router.add_get("/alerts", alerts_view)
    return app


class WebServer:
    """Start/stop lifecycle around an aiohttp runner."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
