"""The local stack's pure parts: configuration rendering, version parsing, ports, pid files."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from botwatch.stack.config import StackConfig, split_host_port
from botwatch.stack.errors import StackError
from botwatch.stack.kafka import new_cluster_id, server_properties
from botwatch.stack.node import Health, Node
from botwatch.stack.opensearch import opensearch_yml
from botwatch.stack.prereqs import parse_java_major
from botwatch.stack.process import PidFile, pid_alive, port_owner, stop_pid, tail


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25.0.1" 2025-10-21 LTS', 25),
        ("something else entirely", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("localhost:9092", ("localhost", 9092)),
        ("127.0.0.1:19092,other:9092", ("127.0.0.1", 19092)),
        ("http://localhost:9200", ("localhost", 9200)),
        ("https://search.example:443/", ("search.example", 443)),
        ("localhost", ("localhost", 9092)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address, 9092) == expected


def test_cluster_id_has_the_form_kafka_storage_expects() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert "=" not in cluster_id
        assert not cluster_id.startswith("-")  # argparse would read it as an option


def test_server_properties_bind_loopback_with_single_node_replication(tmp_path: Path) -> None:
    config = StackConfig(
        home=tmp_path, kafka_bootstrap="localhost:19092", kafka_controller_port=19093
    )
    props = dict(
        line.split("=", 1) for line in server_properties(config, tmp_path / "d").splitlines()
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "d")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["auto.create.topics.enable"] == "false"


def test_opensearch_yml_is_single_node_on_loopback(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, opensearch_url="http://localhost:19200")
    text = opensearch_yml(config, tmp_path / "data", tmp_path / "logs")
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert lines["network.host"] == '"127.0.0.1"'
    assert lines["http.port"] == "19200"
    assert lines["discovery.type"] == '"single-node"'
    assert lines["path.data"] == f'"{tmp_path / "data"}"'


def test_port_owner_names_the_listening_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        owner = port_owner(port)
    assert owner is not None
    assert owner.pid == os.getpid()
    assert "python" in owner.command or "pytest" in owner.command
    assert f"pid {os.getpid()}" in owner.describe()


def test_port_owner_is_none_for_a_free_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert port_owner(port) is None


def test_pid_file_only_recognises_the_process_it_names(tmp_path: Path) -> None:
    code = "import time; print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, "marker-xyz"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()  # the child has exec'd: its command line carries the marker
    try:
        mine = PidFile(tmp_path / "a.pid", marker="marker-xyz")
        mine.write(proc.pid)
        assert mine.running_pid() == proc.pid
        # Same pid, but the command line does not carry the marker: not ours, never stopped.
        stranger = PidFile(tmp_path / "b.pid", marker="some-other-node")
        stranger.write(proc.pid)
        assert stranger.running_pid() is None
        assert stop_pid(proc.pid, grace_s=5) is False
        assert mine.running_pid() is None
    finally:
        proc.kill()
        proc.wait()


def test_stop_pid_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    assert stop_pid(proc.pid, grace_s=0.5) is True
    assert not pid_alive(proc.pid)


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99\n"
    assert "no log" in tail(tmp_path / "missing.log")


def test_stack_error_names_the_fix() -> None:
    err = StackError("Port 9092 is taken.", "stop it.", "last line")
    assert str(err) == "Port 9092 is taken.\n  fix: stop it.\n  details:\n    last line"


def _fake_executable(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_java_too_old_names_the_fix(tmp_path: Path) -> None:
    from botwatch.stack.prereqs import find_java

    _fake_executable(tmp_path / "jdk8" / "bin", "java", "echo 'java version \"1.8.0_402\"' >&2\n")
    with pytest.raises(StackError) as err:
        find_java(str(tmp_path / "jdk8"))
    assert "Java 8" in err.value.problem and "too old" in err.value.problem
    assert "BOTWATCH_JAVA_HOME" in err.value.fix


def test_java_missing_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from botwatch.stack.prereqs import find_java

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(StackError) as err:
        find_java(None)
    assert "Java was not found" in err.value.problem
    assert "install a JDK 17" in err.value.fix


def test_maven_missing_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from botwatch.stack.prereqs import find_maven

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError) as err:
        find_maven()
    assert "Maven" in err.value.problem
    assert "apt-get install maven" in err.value.fix


def test_download_failures_are_told_apart(tmp_path: Path) -> None:
    from botwatch.stack.maven import ArtifactNotFound, Coordinates, Maven

    coords = Coordinates("org.example", "nothing", "1.0", "zip")
    missing = _fake_executable(
        tmp_path / "a",
        "mvn",
        "echo '[ERROR] Could not find artifact org.example:nothing'; exit 1\n",
    )
    with pytest.raises(
        ArtifactNotFound, match=re.escape("does not serve org.example:nothing:1.0:zip")
    ):
        Maven(missing, tmp_path / "m2").copy_artifact(coords, tmp_path / "out")
    offline = _fake_executable(
        tmp_path / "b", "mvn", "echo '[ERROR] Connect to repo.maven.apache.org timed out'; exit 1\n"
    )
    with pytest.raises(StackError) as err:
        Maven(offline, tmp_path / "m2").copy_artifact(coords, tmp_path / "out")
    assert not isinstance(err.value, ArtifactNotFound)
    assert "failed" in err.value.problem
    assert "reaches Maven Central" in err.value.fix
    assert "timed out" in err.value.details


class _ScriptNode(Node):
    """A node whose process is a small Python script: exercises start/stop without Java."""

    name = "script"

    def __init__(self, config: StackConfig, script: str) -> None:
        super().__init__(config, marker="botwatch-script-node")
        self.script = script

    version = "0"  # type: ignore[assignment]
    ports = {}  # type: ignore[assignment]  # noqa: RUF012
    data_path = Path()  # type: ignore[assignment]

    def install(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def launch(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", self.script, "botwatch-script-node"]
        return self.spawn(argv, cwd=self.config.home, env=dict(os.environ))

    def is_ready(self) -> bool:
        return False

    def health(self) -> Health:
        return Health(ok=False, summary="never ready")


def test_a_node_that_never_becomes_ready_reports_its_last_log_lines(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, start_timeout_s=1.5)
    node = _ScriptNode(
        config, "import time; print('starting up slowly', flush=True); time.sleep(60)"
    )
    with pytest.raises(StackError) as err:
        node.start()
    assert "did not become ready within 2 s" in err.value.problem
    assert "starting up slowly" in err.value.details
    assert "BOTWATCH_STACK_TIMEOUT" in err.value.fix
    assert "stopped" in node.stop(grace_s=5)
    assert node.running_pid() is None


def test_a_node_that_exits_while_starting_reports_its_exit_code(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, start_timeout_s=30)
    node = _ScriptNode(
        config, "import sys; print('bad config: no such file', flush=True); sys.exit(3)"
    )
    with pytest.raises(StackError) as err:
        node.start()
    assert "exited with code 3" in err.value.problem
    assert "bad config: no such file" in err.value.details
    assert node.running_pid() is None
