"""Streaming alerts: rules over closed windows and events, the alert lifecycle, silences.

Pure logic only: the worker feeds window records, events and ticks into ``AlertEngine`` and
publishes the alert records it returns; delivery to receivers lives elsewhere.
"""

from streams.alerts.engine import AlertEngine
from streams.alerts.lifecycle import Alert, Silence, Silences, fingerprint
from streams.alerts.rules import (
    DEFAULT_RULES,
    KINDS,
    OPS,
    SEVERITIES,
    STATS,
    AbsenceSpec,
    BurnRateSpec,
    BurnWindow,
    NewErrorTypeSpec,
    Rule,
    RulesError,
    Selector,
    ThresholdSpec,
    format_duration,
    load_rules,
    parse_duration,
    parse_rules,
)

__all__ = [
    "DEFAULT_RULES",
    "KINDS",
    "OPS",
    "SEVERITIES",
    "STATS",
    "AbsenceSpec",
    "Alert",
    "AlertEngine",
    "BurnRateSpec",
    "BurnWindow",
    "NewErrorTypeSpec",
    "Rule",
    "RulesError",
    "Selector",
    "Silence",
    "Silences",
    "ThresholdSpec",
    "fingerprint",
    "format_duration",
    "load_rules",
    "parse_duration",
    "parse_rules",
]
