"""Alert receivers: Prometheus Alertmanager, a generic webhook, Slack; and the ``Notifier``
that fans an alert record out to those configured."""

from sinks.receivers.alertmanager import AlertmanagerReceiver
from sinks.receivers.base import HttpTransport, Receiver, Reply, Transport
from sinks.receivers.config import ReceiverConfig
from sinks.receivers.metrics import ReceiverMetrics
from sinks.receivers.notifier import Notifier
from sinks.receivers.payloads import AlertRecordError
from sinks.receivers.slack import SlackReceiver
from sinks.receivers.webhook import WebhookReceiver

__all__ = [
    "AlertRecordError",
    "AlertmanagerReceiver",
    "HttpTransport",
    "Notifier",
    "Receiver",
    "ReceiverConfig",
    "ReceiverMetrics",
    "Reply",
    "SlackReceiver",
    "Transport",
    "WebhookReceiver",
]
