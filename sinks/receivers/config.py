"""Settings of the alert receivers: where firing and resolved alerts are pushed.

A receiver whose URL is empty is off; with all three empty nothing is sent beyond the
alerts topic and index.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.env import setting


@dataclass(frozen=True)
class ReceiverConfig:
    alertmanager_url: str = setting(
        "",
        "BOTWATCH_ALERTMANAGER_URL",
        "Prometheus Alertmanager base URL (alerts go to <url>/api/v2/alerts); empty: off.",
    )
    alert_webhook_url: str = setting(
        "",
        "BOTWATCH_ALERT_WEBHOOK_URL",
        "URL that receives Alertmanager-style webhook notifications (version 4); empty: off.",
    )
    slack_webhook_url: str = setting(
        "", "BOTWATCH_SLACK_WEBHOOK_URL", "Slack incoming-webhook URL; empty: off."
    )
    external_url: str = setting(
        "",
        "BOTWATCH_ALERT_EXTERNAL_URL",
        "Link back to botwatch put in notifications (generatorURL, externalURL).",
    )
    resend_interval_s: float = setting(
        60.0,
        "BOTWATCH_ALERTMANAGER_RESEND_INTERVAL_S",
        "How often firing alerts are re-sent to Alertmanager; each stays valid 3 intervals.",
    )
    timeout_s: float = setting(
        10.0, "BOTWATCH_ALERT_RECEIVER_TIMEOUT_S", "Timeout of one request to a receiver."
    )
    retries: int = setting(
        -1,
        "BOTWATCH_ALERT_RECEIVER_RETRIES",
        "Retries of a failed delivery before the notification is dropped (and counted); "
        "-1: until the receiver takes it (later ones wait in the queue).",
    )
    retry_base_s: float = setting(
        0.5,
        "BOTWATCH_ALERT_RECEIVER_RETRY_BASE_S",
        "First retry delay after a failed delivery (doubles, with full jitter).",
    )
    retry_cap_s: float = setting(
        30.0, "BOTWATCH_ALERT_RECEIVER_RETRY_CAP_S", "Longest delay between retries."
    )
    queue_size: int = setting(
        1000,
        "BOTWATCH_ALERT_RECEIVER_QUEUE_SIZE",
        "Notifications waiting per receiver; when full the oldest is dropped (and counted).",
    )
    stop_grace_s: float = setting(
        5.0,
        "BOTWATCH_ALERT_RECEIVER_STOP_GRACE_S",
        "How long stopping waits for queued notifications to be delivered.",
    )
