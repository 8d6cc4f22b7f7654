"""The worker's Kafka topics: created when they are missing, and the group's commits."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    # The worker's state table is partitioned like this topic: with another count, partitions
    # past the table's would never be read (faust assigns the table's partitions only).
    exact: bool = False
    # False: checked when it exists, never created here (faust makes its changelog itself).
    create: bool = True


class PartitionCountError(ValueError):
    """Topics whose partition count must equal BOTWATCH_PARTITIONS differ from it."""


async def ensure_topics(bootstrap: str, specs: list[TopicSpec]) -> list[TopicSpec]:
    """Create the topics in ``specs`` that do not exist; returns those created.

    An existing topic is left as it is. A partition count that differs from an ``exact``
    spec raises ``PartitionCountError`` before anything is created; for the others it is
    reported.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [s for s in specs if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            # A topic just made by another worker may come back with an error and no partitions.
            counts = {
                d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0
            }
            wrong = [s for s in present if counts.get(s.name, s.partitions) != s.partitions]
            exact = [s for s in wrong if s.exact]
            if exact:
                raise PartitionCountError(
                    "; ".join(
                        f"topic {s.name} has {counts[s.name]} partitions, "
                        f"BOTWATCH_PARTITIONS is {s.partitions}"
                        for s in exact
                    )
                )
            for spec in wrong:
                log.warning(
                    "topic %s has %s partitions, configured %s: keep events and stats "
                    "topics at one partition count (BOTWATCH_PARTITIONS)",
                    spec.name,
                    counts[spec.name],
                    spec.partitions,
                )
        missing = [s for s in specs if s.name not in existing and s.create]
        if missing:
            # Another worker may create one between our check and our request.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
                )
        return missing
    finally:
        await admin.close()


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: list[int]
) -> dict[int, int]:
    """The next offset to read that consumer group ``group`` committed for each of
    ``partitions`` of ``topic``; a partition it never committed is left out."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        found = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in found.items() if meta.offset >= 0}
