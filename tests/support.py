"""Helpers the integration tests share: reading topics with kcat, running botwatch processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

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
