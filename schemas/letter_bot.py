"""Whose a dead letter is: the rule `botwatch dlq` and the dead-letter index both apply.

The record key is the bot_id by contract, and what a producer routed by; a payload that
failed validation may hold anything as ``bot_id`` (``"invoice bot!"``). So a letter is its
key's bot, except where the payload is a valid event whose key is known to be wrong or
beside the point: a ``job_failure`` or ``sink`` letter (its event passed validation), and
a letter refused for its key (``MISKEYED_PREFIX``). Before, the CLI went by the key and
the index by the payload: the same letter was two bots' in the two places.
"""

from __future__ import annotations

from typing import Final

# How the reason of a valid event whose record key is not its bot_id begins (stage
# ``validate``): the replayer recognizes such a letter by it and sends the record again keyed
# by its bot_id, to the partition that holds the bot's windows.
MISKEYED_PREFIX: Final = "record key: "
# Stages whose letters hold an event that passed validation.
VALID_EVENT_STAGES: Final = frozenset({"job_failure", "sink"})


def miskeyed(stage: str, reason: str) -> bool:
    """Whether the letter is a valid event the worker refused to window for its key."""
    return stage == "validate" and reason.startswith(MISKEYED_PREFIX)


def bot_is_key(stage: str, reason: str) -> bool:
    """Whether a letter with a key is its key's bot (else its payload's ``bot_id``'s, when
    that is a non-empty string, and its key's otherwise)."""
    return stage not in VALID_EVENT_STAGES and not miskeyed(stage, reason)
