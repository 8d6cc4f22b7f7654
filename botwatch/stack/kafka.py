"""A single-node Apache Kafka broker in KRaft mode, run from jars fetched with Maven."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from botwatch.stack.config import StackConfig, split_host_port
from botwatch.stack.errors import StackError
from botwatch.stack.maven import Coordinates
from botwatch.stack.node import Health, Node
from botwatch.stack.prereqs import Toolchain
from botwatch.stack.process import port_is_open

# Kafka's published pom carries the log4j2 API and core but no SLF4J binding (Kafka 4.1 logs
# through SLF4J 1.7), so without this jar the broker would log nothing.
_LOG4J_BINDING = Coordinates("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")

_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""

_JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


def new_cluster_id() -> str:
    """16 random bytes, base64url without padding: the form `kafka-storage format` expects.

    Like Kafka's own Uuid, never one starting with "-", which a command line would take
    for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(config: StackConfig, log_dir: Path) -> str:
    """The broker+controller configuration for one node on loopback."""
    port, controller = config.kafka_port, config.kafka_controller_port
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        # Topics are created on purpose (`botwatch setup`, the worker, tests), never by a typo.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


async def _broker_count(bootstrap: str, timeout_s: float) -> int:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return len(client.cluster.brokers())
    finally:
        await client.close()


def kafka_answers_metadata(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a metadata request (not merely accepts a TCP connection)."""
    host, port = split_host_port(bootstrap, 9092)
    if not port_is_open(host, port):
        return False
    # aiokafka logs every refused connection as an error; while probing that is expected.
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_broker_count(bootstrap, timeout_s)) > 0
    except Exception:  # any failure to bootstrap means "not ready yet"
        return False
    finally:
        client_log.setLevel(level)


class KafkaNode(Node):
    name = "kafka"

    def __init__(self, config: StackConfig, tools: Toolchain) -> None:
        super().__init__(config, marker=str(config.run_dir / "kafka" / "server.properties"))
        self.tools = tools
        self.install_dir = config.dist_dir / f"kafka-{config.kafka_version}"
        self.state_dir = config.run_dir / "kafka"
        self.log_dir = config.data_dir / "kafka"

    @property
    def version(self) -> str:
        return self.config.kafka_version

    @property
    def ports(self) -> dict[str, int]:
        return {"client": self.config.kafka_port, "controller": self.config.kafka_controller_port}

    @property
    def data_path(self) -> Path:
        return self.log_dir

    def _port_setting_hint(self) -> str:
        return "BOTWATCH_KAFKA_BOOTSTRAP, BOTWATCH_KAFKA_CONTROLLER_PORT"

    def install(self) -> None:
        libs = self.install_dir / "libs"
        if (self.install_dir / ".complete").exists():
            return
        staging = self.install_dir.with_name(self.install_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        self.tools.maven.copy_runtime_classpath(
            [Coordinates("org.apache.kafka", "kafka_2.13", self.version), _LOG4J_BINDING],
            staging / "libs",
        )
        shutil.rmtree(self.install_dir, ignore_errors=True)
        staging.rename(self.install_dir)
        (self.install_dir / ".complete").write_text(self.version + "\n")
        assert libs.exists()

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        classpath = str(self.install_dir / "libs" / "*")
        log4j = self.state_dir / "log4j2.properties"
        return [
            str(self.tools.java.binary),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def configure(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2)
        properties = self.state_dir / "server.properties"
        properties.write_text(server_properties(self.config, self.log_dir))
        if (self.log_dir / "meta.properties").exists():
            return
        cluster_id_file = self.state_dir / "cluster-id"
        if not cluster_id_file.exists() or cluster_id_file.read_text().startswith("-"):
            cluster_id_file.write_text(new_cluster_id() + "\n")
        cluster_id = cluster_id_file.read_text().strip()
        argv = self._java(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(properties),
            "--ignore-formatted",
        )
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        if proc.returncode != 0:
            raise StackError(
                f"Formatting Kafka storage in {self.log_dir} failed.",
                f"read the output below; if the directory holds another cluster's data, "
                f"move {self.log_dir} away and run `botwatch stack up` again.",
                (proc.stdout + proc.stderr)[-3000:],
            )

    def launch(self) -> subprocess.Popen[bytes]:
        argv = self._java(
            "kafka.Kafka", str(self.state_dir / "server.properties"), heap=self.config.kafka_heap
        )
        env = {**os.environ, "JAVA_HOME": str(self.tools.java.home)}
        return self.spawn(argv, cwd=self.state_dir, env=env)

    def is_ready(self) -> bool:
        return kafka_answers_metadata(self.config.kafka_bootstrap)

    def health(self) -> Health:
        if kafka_answers_metadata(self.config.kafka_bootstrap):
            return Health(ok=True, summary="answers metadata requests")
        return Health(ok=False, summary="does not answer metadata requests")
