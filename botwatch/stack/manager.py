"""The whole local stack: Kafka first, then OpenSearch; up, down, status and logs."""

from __future__ import annotations

from collections.abc import Callable

from botwatch.stack.config import StackConfig
from botwatch.stack.kafka import KafkaNode
from botwatch.stack.node import Node, NodeStatus
from botwatch.stack.opensearch import OpenSearchNode
from botwatch.stack.prereqs import Toolchain
from botwatch.stack.process import tail

Report = Callable[[str], None]


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        tools = Toolchain(config.java_home, config.maven_repo)
        self.kafka = KafkaNode(config, tools)
        self.opensearch = OpenSearchNode(config, tools)

    @property
    def nodes(self) -> list[Node]:
        return [self.kafka, self.opensearch]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ValueError(f"unknown node {name!r}: choose kafka or opensearch")

    def up(self, report: Report = print) -> bool:
        """Start what is not running. Returns False when everything was already up."""
        started = False
        for node in self.nodes:
            pid = node.running_pid()
            if pid is not None:
                report(f"{node.name}: already up (pid {pid})")
                continue
            report(f"{node.name} {node.version}: starting ...")
            pid = node.start()
            report(f"{node.name}: up (pid {pid})")
            started = True
        if not started:
            report("stack: already up, nothing to do")
        return started

    def down(self, report: Report = print) -> None:
        for node in reversed(self.nodes):
            report(node.stop())

    def status(self) -> list[NodeStatus]:
        return [node.status() for node in self.nodes]

    def logs(self, name: str, lines: int) -> str:
        return tail(self.node(name).log_file, lines)
