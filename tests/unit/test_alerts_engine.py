"""The alert engine: each rule kind fires and resolves, the lifecycle notifies exactly once per
incident, silences suppress and expire, and state survives a restart."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.alerts import AlertEngine, RulesError, fingerprint, load_rules, parse_rules
from streams.windows import WINDOW_MS, rfc3339

T0 = 1_795_428_000_000  # 2026-11-23T10:00:00Z
M = WINDOW_MS
H = 60 * M

THRESHOLD = """\
rules:
  - name: error-rate
    kind: threshold
    severity: warning
    stat: error_rate
    op: ">"
    threshold: 0.2
    span: {span}
    min_events: 20
    for: {for_}
    repeat_interval: {repeat}
    labels: {{team: ops}}
    annotations:
      summary: "{{bot_id}}: {{value:.0%}} errors over {{window}} (> {{threshold}})"
      runbook_url: https://runbooks.example/error-rate
"""


def threshold_engine(span: int = 1, for_: str = "0s", repeat: str = "0s") -> AlertEngine:
    return AlertEngine(parse_rules(THRESHOLD.format(span=span, for_=for_, repeat=repeat)))


def window(
    minute: int,
    bot: str = "invoice-bot",
    count: int = 100,
    errors: int = 0,
    successes: int = 0,
    failures: int = 0,
    p95: float | None = None,
) -> dict[str, Any]:
    """A window record of DESIGN.md for the minute ``minute`` after T0."""
    start = T0 + minute * M
    finished = successes + failures
    samples = finished if p95 is not None else 0
    return {
        "bot_id": bot,
        "window_start": rfc3339(start),
        "window_end": rfc3339(start + M),
        "window_size_s": 60,
        "count": count,
        "errors": errors,
        "successes": successes,
        "failures": failures,
        "retries": 0,
        "error_rate": errors / count if count else 0.0,
        "failure_rate": failures / finished if finished else 0.0,
        "levels": {"debug": 0, "info": count - errors, "warning": 0, "error": errors},
        "duration_ms": {
            "count": samples,
            "sum": 0.0,
            "min": None,
            "max": None,
            "mean": None,
            "p50": None,
            "p95": p95 if samples else None,
            "p99": p95 if samples else None,
        },
        "late_events_excluded": 0,
        "schema_version": 1,
    }


def states(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["rule"], r["bot_id"], r["state"]) for r in records]


def test_threshold_fires_once_and_resolves_once_with_the_designed_record() -> None:
    engine = threshold_engine()
    assert engine.on_window(window(0, errors=5)) == []
    fired = engine.on_window(window(1, errors=30))
    assert fired == [
        {
            "rule": "error-rate",
            "bot_id": "invoice-bot",
            "severity": "warning",
            "state": "firing",
            "value": 0.3,
            "threshold": 0.2,
            "window": "1m",
            "starts_at": "2026-11-23T10:02:00Z",
            "ends_at": None,
            "fingerprint": fingerprint("error-rate", "invoice-bot"),
            "labels": {
                "alertname": "error-rate",
                "bot_id": "invoice-bot",
                "severity": "warning",
                "team": "ops",
            },
            "annotations": {
                "summary": "invoice-bot: 30% errors over 1m (> 0.2)",
                "runbook_url": "https://runbooks.example/error-rate",
            },
        }
    ]
    # Still breaching: no second notification (repeat_interval 0 = never repeat).
    assert engine.on_window(window(2, errors=50)) == []
    assert engine.tick(T0 + 3 * M + 30_000) == []
    resolved = engine.on_window(window(3, errors=1))
    assert states(resolved) == [("error-rate", "invoice-bot", "resolved")]
    assert resolved[0]["starts_at"] == "2026-11-23T10:02:00Z"
    assert resolved[0]["ends_at"] == "2026-11-23T10:04:00Z"
    assert resolved[0]["value"] == 0.01
    assert engine.active() == []
    assert engine.on_window(window(4, errors=1)) == []


def test_keep_firing_for_holds_a_hovering_alert_firing_and_resolves_it_once() -> None:
    text = THRESHOLD.format(span=1, for_="0s", repeat="0s") + "    keep_firing_for: 3m\n"
    engine = AlertEngine(parse_rules(text))
    assert states(engine.on_window(window(0, errors=30))) == [
        ("error-rate", "invoice-bot", "firing")
    ]
    # Hovering at the threshold: below, above, below again. No resolution, no second page.
    assert engine.on_window(window(1, errors=19)) == []
    assert engine.on_window(window(2, errors=25)) == []
    assert engine.active()[0]["held"] is False
    assert engine.on_window(window(3, errors=15)) == []  # clear since the end of minute 3
    [held] = engine.active()  # listed as held, with the value now, not the last breach
    assert (held["state"], held["held"], held["value"]) == ("firing", True, 0.15)
    # Kept over a restart, with when it began to clear.
    engine = round_trip(engine, text)
    assert engine.on_window(window(4, errors=10)) == []
    assert engine.on_window(window(5, errors=10)) == []  # 2 minutes clear: held
    [resolved] = engine.on_window(window(6, errors=10))  # 3 minutes: resolved
    assert (resolved["state"], resolved["ends_at"]) == ("resolved", rfc3339(T0 + 7 * M))
    assert engine.active() == []


def test_a_retired_bot_resolves_an_alert_held_firing_at_once() -> None:
    text = THRESHOLD.format(span=1, for_="0s", repeat="0s") + "    keep_firing_for: 1h\n"
    engine = AlertEngine(parse_rules(text))
    assert len(engine.on_window(window(0, errors=30))) == 1
    assert engine.on_window(window(1, errors=1)) == []  # held
    [resolved] = engine.retire("invoice-bot", T0 + 10 * M, "gone")
    assert (resolved["state"], resolved["annotations"]["retired"]) == ("resolved", "gone")


def test_an_alert_held_while_clearing_is_not_paged_when_its_silence_ends() -> None:
    text = THRESHOLD.format(span=1, for_="0s", repeat="1m") + "    keep_firing_for: 1h\n"
    engine = AlertEngine(parse_rules(text))
    engine.silence("*", "*", until_ms=T0 + 3 * M, reason="x", created_by="y", now_ms=T0)
    assert engine.on_window(window(0, errors=30)) == []  # fires, silenced
    assert engine.on_window(window(1, errors=1)) == []  # clearing, held
    assert engine.tick(T0 + 4 * M) == []  # the silence ended: nothing to page now
    assert engine.on_window(window(2, errors=30)) != []  # holding again: paged


def test_a_record_heard_of_a_bot_never_seen_is_nothing_to_absence() -> None:
    engine = AlertEngine(load_rules())
    assert engine.on_heard("never-seen", T0) == []
    assert not engine.knows("never-seen")


def test_keep_firing_for_is_refused_where_it_means_nothing() -> None:
    absence = """\
rules:
  - {name: down, kind: absence, severity: critical, for: 5m, keep_firing_for: 5m}
"""
    with pytest.raises(RulesError, match="keep_firing_for: unknown field for kind absence"):
        parse_rules(absence)


def test_a_quiet_bot_under_min_events_does_not_alert() -> None:
    engine = threshold_engine()
    # 2 errors in 3 events is a 67% error rate, but 3 events are under min_events (20).
    assert engine.on_window(window(0, count=3, errors=2)) == []
    assert engine.active() == []
    assert states(engine.on_window(window(1, count=20, errors=10))) == [
        ("error-rate", "invoice-bot", "firing")
    ]


def test_a_span_merges_counts_and_recomputes_the_rate() -> None:
    engine = threshold_engine(span=5)
    # 4 events a minute: no single window reaches min_events (20), five together do.
    out = [engine.on_window(window(m, count=4, errors=2)) for m in range(5)]
    assert out[:-1] == [[], [], [], []]
    [fired] = out[-1]
    assert (fired["value"], fired["window"]) == (0.5, "5m")
    # Clean minutes push the errors out of the span: 8/20, 6/20, then 4/20 is not above 0.2.
    out = [engine.on_window(window(m, count=4)) for m in range(5, 8)]
    assert [states(o) for o in out] == [[], [], [("error-rate", "invoice-bot", "resolved")]]
    assert out[2][0]["value"] == 0.2
    assert engine.active() == []


def test_for_keeps_an_alert_pending_until_the_condition_held_that_long() -> None:
    engine = threshold_engine(for_="2m")
    assert engine.on_window(window(0, errors=50)) == []
    [pending] = engine.active()
    assert (pending["state"], pending["starts_at"]) == ("pending", "2026-11-23T10:01:00Z")
    assert engine.on_window(window(1, errors=50)) == []
    assert states(engine.on_window(window(2, errors=50))) == [
        ("error-rate", "invoice-bot", "firing")
    ]
    # A pending alert that clears never notifies anything.
    engine2 = threshold_engine(for_="2m")
    assert engine2.on_window(window(0, errors=50)) == []
    assert engine2.on_window(window(1, errors=0)) == []
    assert engine2.active() == []


def test_repeat_interval_renotifies_a_still_firing_alert() -> None:
    engine = threshold_engine(repeat="5m30s")
    assert len(engine.on_window(window(0, errors=50))) == 1  # fires at 10:01
    notes = [engine.on_window(window(m, errors=50)) for m in range(1, 6)]
    assert notes == [[], [], [], [], []]  # windows ending 10:02 .. 10:06
    assert engine.tick(T0 + 6 * M + 29_000) == []
    assert states(engine.tick(T0 + 6 * M + 30_000)) == [("error-rate", "invoice-bot", "firing")]
    assert engine.tick(T0 + 6 * M + 45_000) == []
    notes = [engine.on_window(window(m, errors=50)) for m in range(6, 12)]
    # Next due at 10:12:00: the window ending then carries it.
    assert [m for m, n in zip(range(6, 12), notes, strict=True) if n] == [11]


def test_a_replayed_window_changes_nothing() -> None:
    engine = threshold_engine()
    first = engine.on_window(window(0, errors=50))
    assert len(first) == 1
    assert engine.on_window(window(0, errors=50)) == []
    assert engine.on_window(window(0, errors=0)) == []
    assert len(engine.active()) == 1


def test_a_silence_suppresses_notifications_and_its_end_releases_them() -> None:
    engine = threshold_engine()
    until = T0 + 9 * M + 30_000
    silence = engine.silence(
        "error-*", "invoice-*", until_ms=until, reason="deploy", created_by="ana", now_ms=T0
    )
    assert engine.silences() == [silence]
    assert engine.on_window(window(0, errors=50)) == []
    [alert] = engine.active()
    assert (alert["state"], alert["silenced"]) == ("firing", True)
    for m in range(1, 9):
        assert engine.on_window(window(m, errors=50)) == []
        assert engine.tick(T0 + (m + 1) * M) == []
    # Expiry while still firing: notified then, once.
    assert states(engine.tick(T0 + 9 * M + 30_000)) == [("error-rate", "invoice-bot", "firing")]
    assert engine.silences() == []
    assert engine.tick(T0 + 9 * M + 31_000) == []
    assert states(engine.on_window(window(9, errors=0))) == [
        ("error-rate", "invoice-bot", "resolved")
    ]


def test_an_incident_entirely_inside_a_silence_notifies_nothing() -> None:
    engine = threshold_engine()
    engine.silence("error-rate", "*", until_ms=T0 + H, reason="x", created_by="y", now_ms=T0)
    assert engine.on_window(window(0, errors=50)) == []
    assert engine.on_window(window(1, errors=0)) == []
    assert engine.tick(T0 + 2 * H) == []


def test_a_silence_set_after_firing_still_lets_the_resolve_through() -> None:
    engine = threshold_engine(repeat="1m")
    assert len(engine.on_window(window(0, errors=50))) == 1
    engine.silence("*", "invoice-bot", until_ms=T0 + H, reason="x", created_by="y", now_ms=T0)
    assert engine.on_window(window(1, errors=50)) == []  # the repeat is suppressed
    assert states(engine.on_window(window(2, errors=0))) == [
        ("error-rate", "invoice-bot", "resolved")
    ]


def test_unsilence_releases_held_notifications_on_the_next_tick() -> None:
    engine = threshold_engine()
    silence = engine.silence("*", "*", until_ms=T0 + H, reason="x", created_by="y", now_ms=T0)
    assert engine.on_window(window(0, errors=50)) == []
    assert engine.unsilence(silence.id) == silence
    assert engine.unsilence(silence.id) is None
    assert states(engine.tick(T0 + M + 1000)) == [("error-rate", "invoice-bot", "firing")]


def test_silences_refuse_an_end_in_the_past() -> None:
    engine = threshold_engine()
    with pytest.raises(ValueError, match="future"):
        engine.silence("*", "*", until_ms=T0, reason="x", created_by="y", now_ms=T0)


def test_a_firing_alert_of_a_bot_that_went_quiet_resolves_on_tick() -> None:
    engine = threshold_engine(span=5)
    assert len(engine.on_window(window(0, errors=50))) == 1
    # No more windows: after the breaching minute leaves the span, the tick resolves it.
    assert engine.tick(T0 + 5 * M) == []
    assert states(engine.tick(T0 + 6 * M)) == [("error-rate", "invoice-bot", "resolved")]


def test_a_quiet_bot_is_evaluated_only_up_to_the_settled_time() -> None:
    engine = threshold_engine(span=5)
    assert len(engine.on_window(window(0, errors=50))) == 1
    # Wall clock is past the span, but windows after minute 1 may still be open: no verdict.
    assert engine.tick(T0 + 9 * M, settled_ms=T0 + 5 * M + 59_000) == []
    resolved = engine.tick(T0 + 9 * M, settled_ms=T0 + 6 * M)
    assert states(resolved) == [("error-rate", "invoice-bot", "resolved")]


TOO_QUIET = """\
rules:
  - name: too-quiet
    kind: threshold
    severity: warning
    stat: {stat}
    op: "<"
    threshold: {threshold}
    span: 2
"""


def test_a_count_below_its_threshold_fires_at_zero_and_a_rate_does_not() -> None:
    """A window-count rule ``count < 10`` resolved when its bot sent nothing at all."""
    engine = AlertEngine(parse_rules(TOO_QUIET.format(stat="count", threshold=10)))
    assert states(engine.on_window(window(0, count=5))) == [("too-quiet", "invoice-bot", "firing")]
    assert engine.tick(T0 + 5 * M) == []  # no event in the span: still 0 < 10
    assert states(engine.on_window(window(5, count=50))) == [
        ("too-quiet", "invoice-bot", "resolved")
    ]
    rate = AlertEngine(parse_rules(TOO_QUIET.format(stat="error_rate", threshold=0.1)))
    assert len(rate.on_window(window(0, count=5, errors=0))) == 1  # 0% < 10%: fires
    assert states(rate.tick(T0 + 5 * M)) == [("too-quiet", "invoice-bot", "resolved")]


def test_a_bot_without_alerts_that_goes_silent_is_caught_by_a_count_below_rule() -> None:
    engine = AlertEngine(parse_rules(TOO_QUIET.format(stat="count", threshold=10)))
    for minute in range(3):
        assert engine.on_window(window(minute, count=50)) == []
    engine.take_dirty()
    assert engine.tick(T0 + 4 * M) == []  # minute 3 empty, minute 2 in the span: 50
    assert engine.take_dirty() == set()  # an evaluation alone writes nothing
    assert states(engine.tick(T0 + 5 * M)) == [("too-quiet", "invoice-bot", "firing")]
    assert engine.take_dirty() == {"invoice-bot"}
    plain = threshold_engine()  # no rule holds at zero: quiet bots cost nothing on the tick
    plain.on_window(window(0, count=50))
    assert plain.tick(T0 + 9 * M) == []


def round_trip(engine: AlertEngine, rules_text: str) -> AlertEngine:
    """What a restarted worker does: per-bot entries and silences through JSON."""
    rules = parse_rules(rules_text)
    table = {bot: orjson.dumps(engine.bot_to_dict(bot)) for bot in engine.take_dirty()}
    silences = orjson.dumps(engine.silence_list.to_list())
    restored = AlertEngine(rules)
    for raw in table.values():
        restored.load_bot(orjson.loads(raw))
    for item in orjson.loads(silences):
        restored.silence_list.restore(type(engine.silences()[0]).from_dict(item))
    return restored


def test_a_restarted_engine_neither_renotifies_nor_forgets_to_resolve() -> None:
    text = THRESHOLD.format(span=1, for_="0s", repeat="1h")
    engine = AlertEngine(parse_rules(text))
    assert len(engine.on_window(window(0, errors=50))) == 1
    until = T0 + 2 * M + 10_000
    engine.silence("*", "other-bot", until_ms=until, reason="x", created_by="y", now_ms=T0)
    assert engine.on_window(window(0, bot="other-bot", errors=50)) == []
    snapshot = engine.to_dict()
    restored = round_trip(engine, text)
    assert restored.to_dict() == snapshot
    assert AlertEngine.from_dict(parse_rules(text), orjson.loads(orjson.dumps(snapshot))).to_dict()
    # The worker replays the window it had not acked, then goes on: no duplicate firing.
    assert restored.on_window(window(0, errors=50)) == []
    assert restored.on_window(window(1, errors=50)) == []
    assert restored.on_window(window(1, bot="other-bot", errors=50)) == []
    assert restored.tick(T0 + 2 * M + 5000) == []
    # The silenced bot fired un-notified; the silence survived the restart and its expiry
    # notifies once.
    assert states(restored.tick(until)) == [("error-rate", "other-bot", "firing")]
    assert states(restored.on_window(window(2, errors=0))) == [
        ("error-rate", "invoice-bot", "resolved")
    ]


def test_a_restart_resolves_alerts_of_rules_no_longer_configured() -> None:
    """They were dropped without a word: the incident a receiver opened stayed open."""
    engine = threshold_engine()
    [fired] = engine.on_window(window(0, errors=50))
    state = orjson.loads(orjson.dumps(engine.bot_to_dict("invoice-bot")))
    restored = AlertEngine(load_rules())
    restored.load_bot(state)
    assert restored.active() == []
    # Until its resolution is out it stays in the state: a batch that writes the bot first,
    # then a crash, must not lose it.
    kept = restored.bot_to_dict("invoice-bot") or {}
    assert [a["rule"] for a in kept["alerts"]] == ["error-rate"]
    [resolved] = restored.tick(T0 + 5 * M)
    assert resolved["state"] == "resolved"
    assert resolved["ends_at"] == rfc3339(T0 + 5 * M)
    for same in ("rule", "bot_id", "severity", "starts_at", "fingerprint", "labels"):
        assert resolved[same] == fired[same], same
    assert "no longer in the rules file" in resolved["annotations"]["summary"]
    assert restored.take_dirty() == {"invoice-bot"}  # its state is written without it
    assert "alerts" not in (restored.bot_to_dict("invoice-bot") or {})
    assert restored.tick(T0 + 6 * M) == []


def test_a_pending_alert_of_a_removed_rule_goes_without_a_word() -> None:
    engine = threshold_engine(for_="10m")
    assert engine.on_window(window(0, errors=50)) == []  # pending: nobody heard of it
    restored = AlertEngine(load_rules())
    restored.load_bot(engine.bot_to_dict("invoice-bot") or {})
    assert restored.tick(T0 + 5 * M) == []


ABSENCE = """\
rules:
  - name: bot-down
    kind: absence
    severity: critical
    for: 5m
    selector: {env: prod}
    annotations: {summary: "{bot_id} silent for {value:.0f}s"}
"""


def test_absence_fires_after_the_configured_time_and_resolves_when_the_bot_sends() -> None:
    engine = AlertEngine(parse_rules(ABSENCE))
    assert engine.on_event("invoice-bot", "prod", None, T0) == []
    assert engine.on_event("test-bot", "staging", None, T0) == []  # not selected
    assert engine.tick(T0 + 5 * M - 1) == []
    [down] = engine.tick(T0 + 5 * M + 500)
    assert (down["rule"], down["bot_id"], down["state"]) == ("bot-down", "invoice-bot", "firing")
    assert down["starts_at"] == "2026-11-23T10:05:00Z"
    assert down["annotations"] == {"summary": "invoice-bot silent for 300s"}
    assert engine.tick(T0 + 10 * M) == []
    [up] = engine.on_event("invoice-bot", "prod", None, T0 + 12 * M)
    assert (up["state"], up["ends_at"], up["value"]) == ("resolved", "2026-11-23T10:12:00Z", 720.0)
    assert engine.tick(T0 + 13 * M) == []
    assert engine.on_event("invoice-bot", "prod", None, T0 + 13 * M) == []


def test_a_stale_event_time_does_not_resolve_a_bot_that_sent_nothing() -> None:
    # A partition behind is judged in its own event time, which stays where it was while
    # what it reads holds nothing usable (junk records, other bots' older events): the gap
    # then looks short, but the bot is still down. Resolving it there paged it again at the
    # next wall-clock tick.
    engine = AlertEngine(parse_rules(ABSENCE))
    engine.on_event("invoice-bot", "prod", None, T0, heard_ms=T0)
    [down] = engine.tick(T0 + 6 * M, wall_clock=True)
    assert down["state"] == "firing"
    assert engine.tick(T0 + M) == []  # behind: the partition's newest event time
    assert engine.tick(T0 + 7 * M, wall_clock=True) == []  # still the same incident
    [up] = engine.on_event("invoice-bot", "prod", None, T0 + 8 * M, heard_ms=T0 + 8 * M)
    assert up["state"] == "resolved"


def test_an_alert_of_a_rule_that_no_longer_selects_its_bot_resolves() -> None:
    # The bot moved from prod to staging: the rule never judged it again, and its alert
    # stayed firing for good, paged again every repeat_interval.
    engine = AlertEngine(parse_rules(ABSENCE))
    engine.on_event("invoice-bot", "prod", None, T0)
    [down] = engine.tick(T0 + 5 * M + 500)
    assert down["state"] == "firing"
    assert engine.on_event("invoice-bot", "staging", None, T0 + 6 * M) == []
    [up] = engine.tick(T0 + 6 * M + 500)
    assert (up["rule"], up["state"]) == ("bot-down", "resolved")
    assert engine.active() == []
    assert engine.tick(T0 + 20 * M) == []  # not selected: not down either


def test_a_tick_that_changes_no_alert_state_writes_nothing() -> None:
    engine = AlertEngine(parse_rules(ABSENCE))
    engine.on_event("invoice-bot", "prod", None, T0)
    assert len(engine.tick(T0 + 5 * M + 500)) == 1
    assert engine.take_dirty() == {"invoice-bot"}
    assert engine.tick(T0 + 6 * M) == []  # still down: only the gap grew
    assert engine.take_dirty() == set()


def test_a_bot_never_seen_is_not_down() -> None:
    engine = AlertEngine(parse_rules(ABSENCE))
    assert engine.tick(T0 + H) == []
    engine.on_window(window(0, bot="ghost"))
    assert engine.tick(T0 + H) == []


BURN = """\
rules:
  - name: slo-page
    kind: burn_rate
    severity: critical
    objective: 0.99
    min_events: 20
    windows:
      - {long: 1h, short: 5m, factor: 14.4}
      - {long: 6h, short: 30m, factor: 6}
"""


HEALTHY = 360  # minutes of clean history first, so that the 6 h window starts full


def burn_run(failure_ratio: float, minutes: int) -> list[dict[str, Any]]:
    """100 finished jobs a minute: 6 healthy hours, then ``failure_ratio`` of them fail for
    ``minutes``."""
    engine = AlertEngine(parse_rules(BURN))
    out: list[dict[str, Any]] = []
    for m in range(HEALTHY + minutes):
        failures = round(100 * failure_ratio) if m >= HEALTHY else 0
        out += engine.on_window(window(m, successes=100 - failures, failures=failures))
    return out


def test_a_burn_rate_above_14_4x_pages() -> None:
    # 20% failures against a 1% budget: 20x. The 5 m window crosses at once, the 1 h window
    # once 44 of its 60 minutes failed 20% (0.2 * 44 / 60 > 0.144); the 6 h window would need
    # 109 such minutes.
    out = burn_run(0.2, minutes=60)
    assert states(out) == [("slo-page", "invoice-bot", "firing")]
    assert out[0]["starts_at"] == rfc3339(T0 + (HEALTHY + 44) * M)
    assert out[0]["window"] == "1h/5m"
    assert out[0]["value"] > 14.4
    assert out[0]["threshold"] == 14.4


def test_a_burn_rate_of_3x_does_not_page() -> None:
    assert burn_run(0.03, minutes=7 * 60) == []


def test_the_6h_pair_pages_a_slower_burn() -> None:
    # 8x: under 14.4, above 6 once the 6 h window holds enough of it.
    out = burn_run(0.08, minutes=6 * 60)
    assert states(out) == [("slo-page", "invoice-bot", "firing")]
    assert (out[0]["window"], out[0]["threshold"]) == ("6h/30m", 6.0)


def test_a_burn_rate_page_resolves_when_the_short_window_recovers() -> None:
    engine = AlertEngine(parse_rules(BURN))
    out: list[dict[str, Any]] = []
    for m in range(40):
        out += engine.on_window(window(m, successes=50, failures=50))
    assert states(out) == [("slo-page", "invoice-bot", "firing")]
    out = []
    # Both short windows must recover: the 5 m one after 5 clean minutes, the 30 m one
    # (20 minutes at 50% against 6x) once fewer than 1.8 of its 30 minutes were failing.
    for m in range(40, 100):
        out += engine.on_window(window(m, successes=100))
    assert states(out) == [("slo-page", "invoice-bot", "resolved")]


NEW_ERROR = """\
rules:
  - name: new-error-type
    kind: new_error_type
    severity: info
    days: 7
    learning: 1h
    resolve_after: 30m
    annotations: {summary: "{bot_id} raised {error_type}"}
"""


def test_new_error_type_fires_for_an_unseen_type_and_resolves_after_a_while() -> None:
    engine = AlertEngine(parse_rules(NEW_ERROR))
    # Learning: types seen in the first hour of a bot are learnt, not alerted.
    assert engine.on_event("b", None, "TimeoutError", T0) == []
    assert engine.on_event("b", None, "TimeoutError", T0 + 2 * H) == []
    [new] = engine.on_event("b", None, "KeyError", T0 + 2 * H + 1)
    assert new["labels"]["error_type"] == "KeyError"
    assert new["annotations"] == {"summary": "b raised KeyError"}
    assert new["fingerprint"] == fingerprint("new-error-type", "b", "KeyError")
    assert engine.on_event("b", None, "KeyError", T0 + 2 * H + 2) == []
    assert engine.active()[0]["value"] == 2.0
    [resolved] = engine.tick(T0 + 2 * H + 30 * M + 1)
    assert (resolved["state"], resolved["value"]) == ("resolved", 2.0)
    # Known for 7 days; after that it counts as new again.
    assert engine.on_event("b", None, "KeyError", T0 + 5 * 24 * H) == []
    assert len(engine.on_event("b", None, "KeyError", T0 + 13 * 24 * H)) == 1


def test_error_types_older_than_the_horizon_are_pruned() -> None:
    engine = AlertEngine(parse_rules(NEW_ERROR))
    engine.on_event("b", None, "Old", T0)
    engine.on_event("b", None, "Recent", T0 + 8 * 24 * H)
    state = engine.bot_to_dict("b") or {}
    assert sorted(state["error_types"]) == ["Recent"]


def test_the_default_rules_run_end_to_end() -> None:
    engine = AlertEngine(load_rules())
    out: list[dict[str, Any]] = []
    for m in range(10):
        engine.on_event("invoice-bot", "prod", None, T0 + m * M)
        out += engine.on_window(window(m, count=200, errors=100, successes=10, failures=10))
    fired = {r["rule"] for r in out if r["state"] == "firing"}
    assert {"bot-error-rate", "bot-failure-rate", "job-slo-burn-page"} <= fired
    out = engine.tick(T0 + 20 * M)
    assert ("bot-down", "invoice-bot", "firing") in states(out)


def test_the_silence_command_refuses_an_empty_rule_with_an_error_not_a_traceback() -> None:
    from click.testing import CliRunner

    from botwatch.cli import main

    env = {"BOTWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # refused before any connection
    args = ["alerts", "silence", "--rule", "", "--bot", "b", "--for", "1m", "--reason", "t"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error: a silence needs a rule and a bot" in result.output
    assert "fix:" in result.output
