"""Helpers the integration tests share: reading topics with kcat, running botwatch processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientSession, web

BOTWATCH = [sys.executable, "-m", "botwatch"]


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` as kcat's JSON envelope (partition, offset, key, payload)."""
    done = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-o", "beginning", "-J", "-q"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    # kcat copies non-UTF-8 payload bytes verbatim into its JSON: keep them as surrogates.
    return [
        json.loads(line.decode("utf-8", "surrogateescape"))
        for line in done.stdout.splitlines()
        if line.strip()
    ]


def headers_of(envelope: dict[str, Any]) -> dict[str, str]:
    """kcat -J lists headers as [name, value, name, value, ...]."""
    flat = envelope.get("headers") or []
    return dict(zip(flat[::2], flat[1::2], strict=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WorkerProcess:
    """`botwatch worker` in a subprocess with its own topics, state directory and web port."""

    def __init__(
        self, env: dict[str, str], state_dir: Path, log: Path, args: list[str] | None = None
    ) -> None:
        self.args = args or []
        self.port = free_port()
        self.env = {
            **os.environ,
            **env,
            "BOTWATCH_STATE_DIR": str(state_dir),
            "BOTWATCH_WEB_PORT": str(self.port),
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*BOTWATCH, "worker", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (0 when the worker does not answer yet)."""
        try:
            _, body = self.get("/metrics")
        except OSError:
            return 0.0
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and not line.startswith(f"{name}_created"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_metric(self, name: str, at_least: float, timeout: float = 60) -> None:
        """Wait until ``metric(name)`` reaches ``at_least``; return either way at the deadline
        (the test's own assertions then say what is missing)."""
        deadline = time.monotonic() + timeout
        while self.metric(name) < at_least and time.monotonic() < deadline:
            time.sleep(0.5)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout} s\n{self.tail()}")

    def wait_unready(self, timeout: float = 30) -> bytes:
        """Wait until /ready answers 503; its body (the reason)."""
        deadline = time.monotonic() + timeout
        while self.get("/ready")[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        code, body = self.get("/ready")
        assert code == 503, body
        return body

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


_UNAUTHENTICATED = {
    "error": {
        "type": "security_exception",
        "reason": "missing authentication credentials for REST request [/]",
    },
    "status": 401,
}


class FlakyProxy:
    """Forwards to the real node, or answers 503 / 401 / drops connections / hangs while
    ``down`` ("503", "401", "drop", "hang")."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.down: str | None = None
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.session: ClientSession | None = None
        self.refused = 0
        # Bodies above this many bytes are answered 413, as nginx's client_max_body_size.
        self.max_body: int | None = None

    async def start(self) -> None:
        self.session = ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None and self.session is not None
        await self.runner.cleanup()
        await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        if self.down is not None:
            self.refused += 1
            if self.down == "hang":  # answers nothing until it is up again
                while self.down == "hang":
                    await asyncio.sleep(0.01)
                return web.Response(status=503, text="upstream was hanging")
            if self.down == "drop" and request.transport is not None:
                request.transport.close()
            if self.down == "401":  # a node with security on, asked without credentials
                return web.json_response(_UNAUTHENTICATED, status=401)
            return web.Response(status=503, text="upstream down")
        body = await request.read()
        if self.max_body is not None and len(body) > self.max_body:
            return web.Response(status=413, text="Request Entity Too Large")
        async with self.session.request(
            request.method,
            self.target + str(request.rel_url),
            data=body,
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as upstream:
            payload = await upstream.read()
            return web.Response(
                status=upstream.status, body=payload, content_type="application/json"
            )


class ThreadedProxy:
    """A FlakyProxy on its own event loop thread, for tests that drive subprocesses."""

    def __init__(self, target: str) -> None:
        self.proxy = FlakyProxy(target)
        self.url = f"http://127.0.0.1:{self.proxy.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(timeout=30)
        return self

    def set_down(self, mode: str | None) -> None:
        self.proxy.down = mode

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


def unique_name(prefix: str) -> str:
    """A topic or index name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class TopicFactory:
    """``make_topic(prefix="t", partitions=1) -> name``: a fresh topic; ``make_topic.app_id()``:
    a unique worker app id. All deleted afterwards, an app's own topics (faust's changelog and
    assignor topics, named after the app id) with them: a long-lived stack would otherwise
    keep two topics of every worker test ever run."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.created: list[str] = []
        self.app_ids: list[str] = []

    def __call__(
        self, prefix: str = "test", partitions: int = 1, config: dict[str, str] | None = None
    ) -> str:
        name = unique_name(f"botwatch-test.{prefix}")
        asyncio.run(create_topics(self.bootstrap, [name], partitions, config))
        self.created.append(name)
        return name

    def app_id(self) -> str:
        app_id = unique_name("botwatch-test-app")
        self.app_ids.append(app_id)
        return app_id

    def delete(self) -> None:
        """Delete every topic made, and the topics of every app id handed out."""
        if self.created or self.app_ids:
            prefixes = tuple(f"{app_id}-" for app_id in self.app_ids)
            asyncio.run(delete_topics(self.bootstrap, self.created, prefixes))


async def create_topics(
    bootstrap: str, names: list[str], partitions: int, config: dict[str, str] | None = None
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, partitions, replication_factor=1, topic_configs=config or {})
                for name in names
            ]
        )
    finally:
        await admin.close()


async def create_when_deleted(
    bootstrap: str, topic: str, partitions: int, timeout: float = 30
) -> None:
    """Create ``topic`` once the broker has finished deleting it (deletion is asynchronous)."""
    from aiokafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    while True:
        try:
            await create_topics(bootstrap, [topic], partitions)
            return
        except TopicAlreadyExistsError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def last_values(records: list[dict[str, Any]], partition: int | None = None) -> dict[str, Any]:
    """The last value of each key (of ``partition``, or of all) in ``read_topic``'s records:
    what recovering from a compacted topic loads; None for a tombstone."""
    last: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: r["offset"]):
        if partition is None or r["partition"] == partition:
            last[r["key"]] = r["payload"]
    return last


async def delete_topics(bootstrap: str, names: list[str], prefixes: tuple[str, ...] = ()) -> None:
    """Delete ``names``, and every topic whose name starts with one of ``prefixes``."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())  # a test may have deleted one already
        names = [n for n in names if n in existing]
        names += [t for t in existing if t.startswith(prefixes) and t not in names]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def read_events(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, validated event) of every record of ``topic``, read back with kcat."""
    from schemas import decode_event

    return [
        (envelope["key"], decode_event(envelope["payload"].encode("utf-8", "surrogateescape")))
        for envelope in read_topic(bootstrap, topic)
    ]


def put_breaking_template(opensearch: Any, prefix: str) -> None:
    """A higher-priority events template mapping `host` as a number, so that an event
    carrying a host name passes the contract but is rejected by OpenSearch."""
    from schemas import event_index_mappings

    mappings = event_index_mappings()
    mappings["properties"]["host"] = {"type": "long"}
    put_overriding_template(opensearch, f"{prefix}-breaking", f"{prefix}-events-*", mappings)


def put_overriding_template(
    opensearch: Any, name: str, pattern: str, mappings: dict[str, Any]
) -> None:
    """An index template for ``pattern`` of a higher priority than botwatch's own."""
    opensearch.indices.put_index_template(
        name=name,
        body={"index_patterns": [pattern], "priority": 500, "template": {"mappings": mappings}},
    )


ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_by: ["alertname", "bot_id"]
receivers:
  - name: "null"
"""


class Alertmanager:
    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.home / "alertmanager.yml"
        config.write_text(ALERTMANAGER_CONFIG)
        (self.home / "data").mkdir()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.path={self.home / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"Alertmanager exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"Alertmanager at {self.url} not ready within 30 s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def alerts(self, alertname: str, **flags: bool) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` for one alertname; ``flags``: active, silenced, ..."""
        query = [("filter", f'alertname="{alertname}"')]
        query += [(k, str(v).lower()) for k, v in flags.items()]
        url = f"{self.url}/api/v2/alerts?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            found: list[dict[str, Any]] = json.loads(response.read())
            return found

    def received(self, status: str) -> float:
        """``alertmanager_alerts_received_total`` for ``status`` (firing | resolved)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("alertmanager_alerts_received_total{") and (
                f'status="{status}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total


class Recorder:
    """``/ok/*`` answers 200, ``/flaky/*`` 500 twice then 200, ``/hang/*`` never answers."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bodies: defaultdict[str, list[Any]] = defaultdict(list)
        self.content_types: list[str] = []
        self.answers: defaultdict[str, list[int]] = defaultdict(list)
        self.arrived = asyncio.Condition()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.content_types.append(request.content_type)
        async with self.arrived:
            self.bodies[path].append(await request.json())
            self.arrived.notify_all()
        if path.startswith("/hang/"):
            await self.release.wait()
        status = 200
        if path.startswith("/flaky/") and len(self.bodies[path]) <= 2:
            status = 500
        self.answers[path].append(status)
        return web.Response(status=status, text="ok" if status == 200 else "boom")

    async def wait_for(self, path: str, count: int) -> list[Any]:
        async with asyncio.timeout(30), self.arrived:
            await self.arrived.wait_for(lambda: len(self.bodies[path]) >= count)
        return self.bodies[path]


@asynccontextmanager
async def recorder(port: int | None = None) -> AsyncIterator[Recorder]:
    rec = Recorder(port)
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    try:
        yield rec
    finally:
        rec.release.set()
        await runner.cleanup()


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``check()``'s first truthy result (run in a thread), polled for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


class PersistingStore(dict[bytes, bytes]):
    """A faust table store stand-in: a dict that records the persisted changelog offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[int, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp.partition] = offset

    def persisted_offset(self, tp: Any) -> int | None:
        return self.persisted.get(tp.partition)


def table_stand_in(changelog: str, producer: Any) -> Any:
    """What ``streams.app.FaustTable`` reads of a faust Table: its store, its changelog's
    name and its app's (aiokafka) producer."""
    return SimpleNamespace(
        data=PersistingStore(),
        changelog_topic=SimpleNamespace(get_topic_name=lambda: changelog),
        app=SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer)),
    )
