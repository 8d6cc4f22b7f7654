"""Settings of the stream worker (`botwatch worker`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from schemas.env import setting

# Kafka's default group.min.session.timeout.ms; faust refuses a session timeout above its
# request timeout (broker_request_timeout, 90 s).
SESSION_TIMEOUT_MIN_S: Final = 6.0
SESSION_TIMEOUT_MAX_S: Final = 90.0


def _default_state_dir() -> Path:
    return Path.home() / ".cache" / "botwatch" / "worker"


@dataclass(frozen=True)
class StreamsConfig:
    kafka_bootstrap: str = setting(
        "localhost:9092", "BOTWATCH_KAFKA_BOOTSTRAP", "Kafka bootstrap servers (host:port,...)."
    )
    app_id: str = setting(
        "botwatch-worker",
        "BOTWATCH_APP_ID",
        "Consumer group and table prefix of the worker; workers with one id share the work.",
    )
    events_topic: str = setting("botwatch.events", "BOTWATCH_EVENTS_TOPIC", "Raw events topic.")
    dlq_topic: str = setting("botwatch.dlq", "BOTWATCH_DLQ_TOPIC", "Dead-letter topic.")
    stats_topic: str = setting(
        "botwatch.stats", "BOTWATCH_STATS_TOPIC", "Closed per-bot windows topic."
    )
    alerts_topic: str = setting("botwatch.alerts", "BOTWATCH_ALERTS_TOPIC", "Alerts topic.")
    silences_topic: str = setting(
        "botwatch.silences",
        "BOTWATCH_SILENCES_TOPIC",
        "Compacted topic holding alert silences (written by `botwatch alerts silence`).",
    )
    rules_file: str = setting(
        "",
        "BOTWATCH_ALERT_RULES",
        "Alert rules YAML file; empty: the default rules shipped with botwatch.",
    )
    alert_tick_s: float = setting(
        1.0,
        "BOTWATCH_ALERT_TICK_S",
        "How often absence, repeats, silences and quiet bots are evaluated.",
    )
    partitions: int = setting(
        6,
        "BOTWATCH_PARTITIONS",
        "Partitions of the topics the worker creates when missing (events, dead letters, stats).",
    )
    lateness_s: float = setting(
        30.0,
        "BOTWATCH_ALLOWED_LATENESS_S",
        "How far behind a partition's newest event time an event may be and still count.",
    )
    max_future_s: float = setting(
        3600.0,
        "BOTWATCH_MAX_FUTURE_S",
        "How far ahead of the worker's clock an event time may be and still count in the stats "
        "(a later one is indexed and counted, and does not move the watermark).",
    )
    idle_close_s: float = setting(
        120.0,
        "BOTWATCH_IDLE_CLOSE_S",
        "Wall-clock seconds without records after which a quiet partition's windows close.",
    )
    retire_after_s: float = setting(
        7 * 86400.0,
        "BOTWATCH_RETIRE_AFTER_S",
        "A bot that sends nothing for this long is forgotten: its window and alert state are "
        "deleted, its firing alerts resolve (0: never). Bounds the worker's memory when bot "
        "ids come and go.",
    )
    batch_max: int = setting(
        5000, "BOTWATCH_BATCH_MAX", "Most records the worker processes in one batch."
    )
    batch_within_s: float = setting(
        0.25, "BOTWATCH_BATCH_WITHIN_S", "Longest wait to fill a batch before processing it."
    )
    session_timeout_s: float = setting(
        30.0,
        "BOTWATCH_SESSION_TIMEOUT_S",
        "How long the group waits for a silent worker (e.g. killed) before moving its partitions.",
    )
    state_dir: Path = setting(
        _default_state_dir,
        "BOTWATCH_STATE_DIR",
        "Where the worker keeps its local table store (rocksdict).",
    )
    store: str = setting(
        "rocksdb://",
        "BOTWATCH_STORE",
        "Table store: rocksdb:// on disk (rocksdict) or memory:// (rebuilt from the changelog).",
    )
    web_host: str = setting(
        "127.0.0.1",
        "BOTWATCH_WEB_HOST",
        "Address the worker's /health /ready /metrics /status endpoints listen on (they "
        "have no authentication: the worker warns when it is not a loopback address).",
    )
    web_port: int = setting(6066, "BOTWATCH_WEB_PORT", "Port of the worker's web endpoints.")
    dlq_max_replays: int = setting(
        3,
        "BOTWATCH_DLQ_MAX_REPLAYS",
        "`botwatch dlq replay|import`: a dead letter replayed this often is quarantined, not sent.",
    )
    dlq_confirm_above: int = setting(
        1000,
        "BOTWATCH_DLQ_CONFIRM_ABOVE",
        "`botwatch dlq replay|import` ask before sending more records than this (--yes skips).",
    )

    def problems(self) -> list[str]:
        """What the worker cannot run with, one line per setting (empty: nothing).

        Checked at start: a batch of at most 0 records made the worker spin without ever
        reading, a negative lateness was refused only when state was reloaded (at the next
        restart), a session timeout outside the broker's bounds left it out of the group for
        good, all after it had joined and taken partitions from healthy workers.
        """
        found: list[str] = []

        def need(ok: bool, env: str, value: object, rule: str) -> None:
            if not ok:
                found.append(f"{env}={value}: {rule}")

        need(self.partitions >= 1, "BOTWATCH_PARTITIONS", self.partitions, "must be 1 or more")
        need(self.batch_max >= 1, "BOTWATCH_BATCH_MAX", self.batch_max, "must be 1 or more")
        for env, seconds in (
            ("BOTWATCH_ALLOWED_LATENESS_S", self.lateness_s),
            ("BOTWATCH_MAX_FUTURE_S", self.max_future_s),
            ("BOTWATCH_BATCH_WITHIN_S", self.batch_within_s),
            ("BOTWATCH_RETIRE_AFTER_S", self.retire_after_s),
        ):
            need(seconds >= 0, env, seconds, "must be 0 or more")
        for env, seconds in (
            ("BOTWATCH_IDLE_CLOSE_S", self.idle_close_s),
            ("BOTWATCH_ALERT_TICK_S", self.alert_tick_s),
        ):
            need(seconds > 0, env, seconds, "must be more than 0")
        need(
            SESSION_TIMEOUT_MIN_S <= self.session_timeout_s <= SESSION_TIMEOUT_MAX_S,
            "BOTWATCH_SESSION_TIMEOUT_S",
            self.session_timeout_s,
            f"must be from {SESSION_TIMEOUT_MIN_S:g} s (the broker's "
            "group.min.session.timeout.ms by default: below it the broker refuses the worker's "
            f"join for good) to {SESSION_TIMEOUT_MAX_S:g} s (the worker's request timeout)",
        )
        need(1 <= self.web_port <= 65535, "BOTWATCH_WEB_PORT", self.web_port, "must be 1 to 65535")
        return found
