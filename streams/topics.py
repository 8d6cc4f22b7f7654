"""Creating the worker's Kafka topics when they are missing."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


async def ensure_topics(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create the topics in ``specs`` that do not exist; returns the names created.

    An existing topic is left as it is; a partition count that differs from the spec is
    reported, because per-bot windows rely on events and stats being co-partitioned.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            # Another worker may create one between our check and our request.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
                )
        present = [s for s in specs if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for spec in present:
                if counts.get(spec.name, spec.partitions) != spec.partitions:
                    log.warning(
                        "topic %s has %s partitions, configured %s: keep events and stats "
                        "topics at one partition count (BOTWATCH_PARTITIONS)",
                        spec.name,
                        counts[spec.name],
                        spec.partitions,
                    )
        return [s.name for s in missing]
    finally:
        await admin.close()
