"""What every stack node shares: pid file, log file, port checks, start and stop."""

from __future__ import annotations

import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from botwatch.stack.config import StackConfig
from botwatch.stack.errors import StackError
from botwatch.stack.process import PidFile, port_owner, spawn, stop_pid, tail

LOG_ROTATE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Health:
    ok: bool
    summary: str


@dataclass(frozen=True)
class NodeStatus:
    name: str
    version: str
    pid: int | None
    ports: dict[str, int]
    health: Health
    data_dir: Path
    log_file: Path


class Node(ABC):
    """One Java process of the stack, started in the background and owned through its pid file."""

    name: str

    def __init__(self, config: StackConfig, marker: str) -> None:
        self.config = config
        self.pidfile = PidFile(config.run_dir / f"{self.name}.pid", marker)
        self.log_file = config.logs_dir / f"{self.name}.log"

    @property
    @abstractmethod
    def version(self) -> str: ...

    @property
    @abstractmethod
    def ports(self) -> dict[str, int]: ...

    @property
    @abstractmethod
    def data_path(self) -> Path: ...

    @abstractmethod
    def install(self) -> None:
        """Fetch and unpack the distribution once; later calls are no-ops."""

    @abstractmethod
    def configure(self) -> None:
        """Write configuration and prepare data directories (idempotent)."""

    @abstractmethod
    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process in the background."""

    @abstractmethod
    def is_ready(self) -> bool: ...

    @abstractmethod
    def health(self) -> Health: ...

    def spawn(
        self, argv: list[str], cwd: Path, env: dict[str, str], user: str | None = None
    ) -> subprocess.Popen[bytes]:
        if self.log_file.exists() and self.log_file.stat().st_size > LOG_ROTATE_BYTES:
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        return spawn(argv, log_path=self.log_file, cwd=cwd, env=env, user=user)

    def running_pid(self) -> int | None:
        return self.pidfile.running_pid()

    def check_ports_free(self) -> None:
        for role, port in self.ports.items():
            owner = port_owner(port)
            if owner is not None:
                raise StackError(
                    f"Port {port} ({self.name} {role}) is already taken by {owner.describe()}.",
                    f"stop that process, or give botwatch other ports "
                    f"({self._port_setting_hint()}) and run `botwatch stack up` again.",
                )

    def _port_setting_hint(self) -> str:
        return "see `botwatch --help` for the port settings"

    def start(self) -> int:
        """Start the node and wait until it is ready; returns its pid."""
        self.install()
        self.configure()
        self.check_ports_free()
        proc = self.launch()
        self.pidfile.write(proc.pid)
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self.pidfile.clear()
                raise StackError(
                    f"{self.name} exited with code {code} while starting.",
                    f"read the log lines below (full log: {self.log_file}), fix the cause, "
                    "and run `botwatch stack up` again.",
                    tail(self.log_file, 30),
                )
            if self.is_ready():
                return proc.pid
            time.sleep(1.0)
        raise StackError(
            f"{self.name} did not become ready within {self.config.start_timeout_s:.0f} s "
            f"(pid {proc.pid} is still running).",
            f"read the log lines below (full log: {self.log_file}); on a slow machine raise "
            "BOTWATCH_STACK_TIMEOUT; `botwatch stack down` stops the half-started node.",
            tail(self.log_file, 30),
        )

    def stop(self, grace_s: float = 60.0) -> str:
        pid = self.running_pid()
        if pid is None:
            self.pidfile.clear()
            return f"{self.name}: not running"
        forced = stop_pid(pid, grace_s)
        self.pidfile.clear()
        how = "killed after the grace period" if forced else "stopped"
        return f"{self.name}: {how} (pid {pid})"

    def status(self) -> NodeStatus:
        pid = self.running_pid()
        health = self.health() if pid else Health(ok=False, summary="not running")
        if pid is None and health.ok is False and self._foreign_listener():
            health = Health(ok=False, summary=self._foreign_listener())
        return NodeStatus(
            name=self.name,
            version=self.version,
            pid=pid,
            ports=self.ports,
            health=health,
            data_dir=self.data_path,
            log_file=self.log_file,
        )

    def _foreign_listener(self) -> str:
        for port in self.ports.values():
            owner = port_owner(port)
            if owner is not None:
                return f"not started by botwatch; port {port} is held by {owner.describe()}"
        return ""
