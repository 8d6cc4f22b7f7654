"""The real local stack: clients we did not write talk to it, and the CLI reports it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from botwatch.settings import Settings

BOTWATCH = [sys.executable, "-m", "botwatch"]


def botwatch(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    return subprocess.run(
        [*BOTWATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: list[tuple[bytes, bytes]] = []
        async with asyncio.timeout(60):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    got.extend((r.key, r.value) for r in records)
        return got
    finally:
        await consumer.stop()


def test_aiokafka_to_kcat(stack: Settings, make_topic: Any) -> None:
    topic = make_topic("smoke")
    records = [(f"bot-{i % 3}".encode(), f'{{"n": {i}}}'.encode()) for i in range(50)]
    asyncio.run(_produce(stack.kafka_bootstrap, topic, records))
    out = subprocess.run(
        [
            "kcat",
            "-b",
            stack.kafka_bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k\t%s\n",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    got = sorted(tuple(line.split("\t")) for line in out.splitlines())
    assert got == sorted((k.decode(), v.decode()) for k, v in records)


def test_kcat_to_aiokafka(stack: Settings, make_topic: Any) -> None:
    topic = make_topic("smoke")
    lines = "".join(f"key-{i}|value-{i}\n" for i in range(40))
    subprocess.run(
        ["kcat", "-b", stack.kafka_bootstrap, "-P", "-t", topic, "-K", "|"],
        input=lines,
        text=True,
        timeout=60,
        check=True,
    )
    got = asyncio.run(_consume(stack.kafka_bootstrap, topic, 40))
    assert sorted(got) == sorted((f"key-{i}".encode(), f"value-{i}".encode()) for i in range(40))


def test_indexed_document_is_found_by_search(opensearch: Any, make_index: Any) -> None:
    index = make_index("smoke")
    opensearch.indices.create(index=index, body={"settings": {"number_of_replicas": 0}})
    doc_id = uuid.uuid4().hex
    opensearch.index(
        index=index,
        id=doc_id,
        body={"bot_id": "smoke-bot", "message": "hello smoke"},
        refresh="wait_for",
    )
    hits = opensearch.search(index=index, body={"query": {"match": {"message": "smoke"}}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == [doc_id]


def test_stack_status_reports_both_nodes_healthy(stack: Settings) -> None:
    result = botwatch("stack", "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    nodes = {n["name"]: n for n in json.loads(result.stdout)}
    assert set(nodes) == {"kafka", "opensearch"}
    assert all(n["healthy"] and n["pid"] for n in nodes.values())
    assert nodes["kafka"]["ports"]["client"] == int(stack.kafka_bootstrap.rsplit(":", 1)[1])
    text = botwatch("stack", "status").stdout
    assert text.count("healthy") == 2


def test_stack_up_when_up_is_a_noop(stack: Settings) -> None:
    pids = {n["name"]: n["pid"] for n in json.loads(botwatch("stack", "status", "--json").stdout)}
    result = botwatch("stack", "up")
    assert result.returncode == 0, result.stderr
    assert "already up, nothing to do" in result.stdout
    after = {n["name"]: n["pid"] for n in json.loads(botwatch("stack", "status", "--json").stdout)}
    assert after == pids


def _isolated_env(stack: Settings, home: Path, kafka_port: int) -> dict[str, str]:
    """A second stack's settings: its own home and ports, the main stack's downloads."""
    return {
        "BOTWATCH_HOME": str(home),
        "BOTWATCH_CACHE_DIR": str(stack.stack_config().dist_dir.parent),
        "BOTWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "BOTWATCH_KAFKA_CONTROLLER_PORT": str(_free_port()),
        "BOTWATCH_OPENSEARCH_URL": f"http://127.0.0.1:{_free_port()}",
        "BOTWATCH_OPENSEARCH_TRANSPORT_PORT": str(_free_port()),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_up_refuses_a_taken_port_and_says_by_what(stack: Settings, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = botwatch("stack", "up", env=_isolated_env(stack, tmp_path / "home", port))
    assert result.returncode == 1
    assert f"Port {port} (kafka client) is already taken by pid {os.getpid()}" in result.stderr
    assert "fix: stop that process, or give botwatch other ports" in result.stderr
    assert "BOTWATCH_KAFKA_BOOTSTRAP" in result.stderr


def test_status_of_a_stack_that_is_not_running(stack: Settings, tmp_path: Path) -> None:
    result = botwatch("stack", "status", env=_isolated_env(stack, tmp_path / "home", _free_port()))
    assert result.returncode == 1
    assert result.stdout.count("DOWN - not running") == 2


async def _topic_exists(bootstrap: str, topic: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


def test_down_then_up_keeps_topics_and_indices(
    stack: Settings, make_topic: Any, make_index: Any, opensearch: Any
) -> None:
    topic = make_topic("persist")
    asyncio.run(_produce(stack.kafka_bootstrap, topic, [(b"k", b"kept")]))
    index = make_index("persist")
    opensearch.index(index=index, id="1", body={"kept": True}, refresh=True)

    down = botwatch("stack", "down")
    assert down.returncode == 0, down.stderr
    assert "kafka: stopped" in down.stdout and "opensearch: stopped" in down.stdout
    status = botwatch("stack", "status")
    assert status.returncode == 1 and status.stdout.count("DOWN") == 2

    started = time.monotonic()
    up = botwatch("stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"stack up (warm cache) took {time.monotonic() - started:.1f} s")

    assert asyncio.run(_topic_exists(stack.kafka_bootstrap, topic))
    assert asyncio.run(_consume(stack.kafka_bootstrap, topic, 1)) == [(b"k", b"kept")]
    assert opensearch.get(index=index, id="1")["_source"] == {"kept": True}
