"""A single-node OpenSearch on loopback, run from the integ-test distribution on Maven Central."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from botwatch.stack.config import StackConfig
from botwatch.stack.errors import StackError
from botwatch.stack.maven import ArtifactNotFound, Coordinates
from botwatch.stack.node import Health, Node
from botwatch.stack.prereqs import Toolchain
from botwatch.stack.users import ensure_service_user, grant_traversal


def opensearch_yml(config: StackConfig, data: Path, logs: Path) -> str:
    settings: dict[str, Any] = {
        "cluster.name": "botwatch",
        "node.name": "botwatch-1",
        "path.data": str(data),
        "path.logs": str(logs),
        # Loopback only: bootstrap checks stay off and nothing is reachable from outside.
        "network.host": "127.0.0.1",
        "http.port": config.opensearch_port,
        "transport.port": config.opensearch_transport_port,
        "discovery.type": "single-node",
        "bootstrap.system_call_filter": False,
        "node.store.allow_mmap": False,
        "cluster.routing.allocation.disk.threshold_enabled": False,
        "action.destructive_requires_name": True,
    }
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())


def _get_json(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (OSError, ValueError, urllib.error.URLError):
        return None


def cluster_health(base_url: str) -> str | None:
    """``green``/``yellow``/``red``, or None when the node does not answer."""
    body = _get_json(base_url.rstrip("/") + "/_cluster/health")
    return None if body is None else str(body.get("status"))


def _make_executable(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_file():
            entry.chmod(entry.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class OpenSearchNode(Node):
    name = "opensearch"

    def __init__(self, config: StackConfig, tools: Toolchain) -> None:
        super().__init__(config, marker="org.opensearch.bootstrap.OpenSearch")
        self.tools = tools
        self.install_dir = config.dist_dir / f"opensearch-{config.opensearch_version}"
        self.node_data = config.data_dir / "opensearch"
        self.node_logs = config.logs_dir / "opensearch"
        self.run_as = config.opensearch_user if os.geteuid() == 0 else None

    @property
    def version(self) -> str:
        return self.config.opensearch_version

    @property
    def ports(self) -> dict[str, int]:
        return {
            "http": self.config.opensearch_port,
            "transport": self.config.opensearch_transport_port,
        }

    @property
    def data_path(self) -> Path:
        return self.node_data

    def _port_setting_hint(self) -> str:
        return "BOTWATCH_OPENSEARCH_URL, BOTWATCH_OPENSEARCH_TRANSPORT_PORT"

    @property
    def ism_installed(self) -> bool:
        return (self.install_dir / "plugins" / "opensearch-index-management").is_dir()

    def install(self) -> None:
        if (self.install_dir / ".complete").exists():
            return
        downloads = self.config.dist_dir / "downloads"
        archive = self.tools.maven.copy_artifact(
            Coordinates(
                "org.opensearch.distribution.integ-test-zip", "opensearch", self.version, "zip"
            ),
            downloads,
        )
        staging = self.install_dir.with_name(self.install_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        (root,) = [p for p in staging.iterdir() if p.is_dir()]
        _make_executable(root / "bin")
        shutil.rmtree(self.install_dir, ignore_errors=True)
        root.rename(self.install_dir)
        shutil.rmtree(staging, ignore_errors=True)
        self._install_ism(downloads)
        (self.install_dir / ".complete").write_text(self.version + "\n")

    def _install_ism(self, downloads: Path) -> None:
        """Install job-scheduler + index-management when Maven Central serves them."""
        plugin_version = f"{self.version}.0"
        try:
            zips = [
                self.tools.maven.copy_artifact(
                    Coordinates("org.opensearch.plugin", name, plugin_version, "zip"), downloads
                )
                for name in ("opensearch-job-scheduler", "opensearch-index-management")
            ]
        except ArtifactNotFound:
            (self.install_dir / "ISM-NOT-AVAILABLE").write_text(
                f"opensearch-index-management {plugin_version} is not on Maven Central; "
                "botwatch's retention sweeper deletes old indices instead.\n"
            )
            return
        env = self._env()
        for archive in zips:
            proc = subprocess.run(
                [
                    str(self.install_dir / "bin" / "opensearch-plugin"),
                    "install",
                    "--batch",
                    archive.as_uri(),
                ],
                cwd=self.install_dir,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise StackError(
                    f"Installing the OpenSearch plugin {archive.name} failed.",
                    f"delete {self.install_dir} and run `botwatch stack up` again.",
                    (proc.stdout + proc.stderr)[-3000:],
                )

    def _env(self) -> dict[str, str]:
        heap = self.config.opensearch_heap
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENSEARCH_JAVA_HOME": str(self.tools.java.home),
            "JAVA_HOME": str(self.tools.java.home),
            "OPENSEARCH_PATH_CONF": str(self.install_dir / "config"),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
            "LANG": "C.UTF-8",
        }
        if self.run_as:
            env["HOME"] = pwd.getpwnam(self.run_as).pw_dir
        return env

    def configure(self) -> None:
        for directory in (self.node_data, self.node_logs):
            directory.mkdir(parents=True, exist_ok=True)
        (self.install_dir / "config" / "opensearch.yml").write_text(
            opensearch_yml(self.config, self.node_data, self.node_logs)
        )
        if self.run_as:
            # OpenSearch refuses to run as root: hand its files to a dedicated user.
            ensure_service_user(self.run_as)
            for path in (self.install_dir, self.node_data, self.node_logs):
                grant_traversal(path, self.run_as)
                subprocess.run(["chown", "-R", f"{self.run_as}:", str(path)], check=True)
            self.config.logs_dir.mkdir(parents=True, exist_ok=True)

    def launch(self) -> subprocess.Popen[bytes]:
        argv = [
            str(self.install_dir / "bin" / "opensearch"),
            "-p",
            str(self.node_logs / "opensearch.pid"),
        ]
        return self.spawn(argv, cwd=self.install_dir, env=self._env(), user=self.run_as)

    def is_ready(self) -> bool:
        return cluster_health(self.config.opensearch_url) in {"green", "yellow"}

    def health(self) -> Health:
        status = cluster_health(self.config.opensearch_url)
        if status is None:
            return Health(ok=False, summary="does not answer HTTP")
        plugins = "ISM plugin" if self.ism_installed else "no ISM plugin (sweeper retention)"
        return Health(ok=status in {"green", "yellow"}, summary=f"cluster {status}; {plugins}")
