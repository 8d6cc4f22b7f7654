"""Retention planning, index names, templates and ISM policy bodies: pure, no OpenSearch."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from botwatch.settings import Settings
from schemas.env import SettingsError
from sinks.config import SinkConfig
from sinks.indices import index_name, parse_index
from sinks.retention import ism_policies, plan_retention, retention_days
from sinks.templates import template_bodies

TODAY = date(2026, 11, 23)
CONFIG = SinkConfig(index_prefix="bw")


def name(family: str, days_ago: int) -> str:
    return f"bw-{family}-{(TODAY - timedelta(days=days_ago)).strftime('%Y.%m.%d')}"


def test_exactly_the_indices_past_their_age() -> None:
    ages = {"events": 90, "events-errors": 365, "stats": 400, "dlq": 30, "alerts": 400}
    names, expected = [], []
    for family, keep in ages.items():
        for days_ago in (0, keep - 1, keep, keep + 1, keep + 200):
            names.append(name(family, days_ago))
            if days_ago > keep:
                expected.append(name(family, days_ago))
    planned = plan_retention(names, TODAY, CONFIG)
    assert sorted(planned) == sorted(expected)
    assert len(planned) == 10


def test_other_indices_are_never_touched() -> None:
    names = [
        "bw-events-1999.01.01x",
        "bw-events-1999.13.01",
        "bw-other-1999.01.01",
        "bwx-events-1999.01.01",
        "other-bw-events-1999.01.01",
        "bw-test-abc-events-1999.01.01",
        "bw-events",
        ".kibana_1",
        "bw-events-1999.01.01-restored",
    ]
    assert plan_retention(names, TODAY, CONFIG) == []


def test_errors_family_is_not_read_as_events() -> None:
    assert parse_index("bw", "bw-events-errors-2026.01.02") == ("events-errors", date(2026, 1, 2))
    assert parse_index("bw", "bw-events-2026.01.02") == ("events", date(2026, 1, 2))
    assert parse_index("bw", "bw-events-errors-2026.02") == ("events-errors", date(2026, 2, 28))


def test_a_monthly_index_goes_once_its_last_day_is_past_retention() -> None:
    # Error events, windows and alerts: one index a month (a node holds 1,000 shards by
    # default; one a day per family at the default retention came to 1,285).
    assert index_name("bw", "stats", "2026.11.23") == "bw-stats-2026.11"
    assert index_name("bw", "dlq", "2026.11.23") == "bw-dlq-2026.11.23"
    config = SinkConfig(index_prefix="bw", retention_stats_days=30)
    names = ["bw-stats-2026.10", "bw-stats-2026.09", "bw-stats-2026.02", "bw-stats-2026.13"]
    today = date(2026, 11, 30)  # October's last day is 30 days back: kept
    assert plan_retention(names, today, config) == ["bw-stats-2026.02", "bw-stats-2026.09"]
    # Daily indices made before those families went monthly are still swept.
    assert plan_retention(["bw-stats-2026.10.01"], today, config) == ["bw-stats-2026.10.01"]


def test_retention_follows_settings() -> None:
    config = SinkConfig(index_prefix="bw", retention_dlq_days=1)
    assert plan_retention([name("dlq", 2), name("dlq", 1)], TODAY, config) == [name("dlq", 2)]


def test_ism_policies_delete_each_family_after_its_age() -> None:
    policies = ism_policies(CONFIG)
    days = retention_days(CONFIG)
    assert set(policies) == {f"bw-{f}-retention" for f in days}
    priorities = {}
    for family, keep in days.items():
        policy = policies[f"bw-{family}-retention"]["policy"]
        hot, delete = policy["states"]
        assert policy["default_state"] == hot["name"] == "hot"
        # A monthly index is made in its first days and written to for a month more.
        age = keep + (31 if family in ("events-errors", "stats", "alerts") else 0)
        assert hot["transitions"] == [
            {"state_name": "delete", "conditions": {"min_index_age": f"{age}d"}}
        ]
        assert delete == {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
        (template,) = policy["ism_template"]
        assert template["index_patterns"] == [f"bw-{family}-*"]
        priorities[family] = template["priority"]
    # bw-events-* also matches the errors indices: the errors policy must win there.
    assert priorities["events-errors"] > priorities["events"]


def test_templates_cover_every_family_with_single_node_settings() -> None:
    bodies = template_bodies(CONFIG)
    assert set(bodies) == {"bw-events", "bw-stats", "bw-dlq", "bw-alerts"}
    for body in bodies.values():
        assert body["template"]["settings"]["index"] == {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "refresh_interval": "500ms",
        }
    slower = template_bodies(SinkConfig(index_prefix="bw", index_refresh_interval="30s"))
    assert {b["template"]["settings"]["index"]["refresh_interval"] for b in slower.values()} == {
        "30s"
    }
    assert bodies["bw-events"]["index_patterns"] == ["bw-events-*"]
    assert bodies["bw-events"]["template"]["mappings"]["properties"]["meta"] == {
        "type": "flat_object"
    }
    assert bodies["bw-dlq"]["template"]["mappings"]["properties"]["event"] == {
        "type": "flat_object"
    }


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        *[("500ms", "500ms"), ("1s", "1s"), ("30s", "30s"), ("1m", "1m"), ("-1", "-1")],
        *[(" 2S ", "2s"), ("500MS", "500ms"), ("1H", "1h")],  # as OpenSearch reads them
    ],
)
def test_the_refresh_interval_takes_opensearch_time_values(value: str, kept: str) -> None:
    assert SinkConfig(index_refresh_interval=value).index_refresh_interval == kept


@pytest.mark.parametrize(
    "value",
    ["", "1.5s", "1 s", "fast", "-2", "10", "0s", "0ms", "1nanos", "10micros", "9" * 19 + "s"],
)
def test_a_refresh_interval_opensearch_would_refuse_is_named_at_start(value: str) -> None:
    with pytest.raises(SettingsError, match=r"BOTWATCH_INDEX_REFRESH_INTERVAL=.*unit"):
        SinkConfig(index_refresh_interval=value)
    with pytest.raises(SettingsError, match="BOTWATCH_INDEX_REFRESH_INTERVAL"):
        Settings.load({"BOTWATCH_INDEX_REFRESH_INTERVAL": value or " "})
