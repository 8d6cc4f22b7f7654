"""Alert rules: the default set loads, and a broken file is refused naming rule, field, line."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.alerts import (
    DEFAULT_RULES,
    BurnRateSpec,
    BurnWindow,
    RulesError,
    Selector,
    ThresholdSpec,
    format_duration,
    load_rules,
    parse_duration,
    parse_rules,
)
from streams.alerts.lifecycle import fill_in

GOOD = """\
rules:
  - name: bot-error-rate
    kind: threshold
    severity: warning
    selector: {glob: "invoice-*", env: prod}
    stat: error_rate
    op: ">"
    threshold: 0.2
    span: 5
    min_events: 20
    for: 2m
    labels: {team: ops}
    annotations:
      summary: "{bot_id} at {value:.0%} over {window}"
  - name: page
    kind: burn_rate
    severity: critical
    objective: 0.99
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "rules.yaml")
    return info.value.problems


def test_the_default_rules_load_and_cover_every_kind() -> None:
    rules = load_rules()
    assert {r.kind for r in rules} == {"threshold", "absence", "burn_rate", "new_error_type"}
    assert load_rules(DEFAULT_RULES) == rules


def test_a_valid_file_builds_the_model() -> None:
    threshold, burn = parse_rules(GOOD)
    assert threshold.spec == ThresholdSpec("error_rate", ">", 0.2, 5, 20)
    assert threshold.for_ms == 120_000
    assert threshold.window == "5m"
    assert threshold.selector == Selector(frozenset(), ("invoice-*",), frozenset({"prod"}))
    assert threshold.selector.matches("invoice-eu", "prod")
    assert not threshold.selector.matches("invoice-eu", "staging")
    assert not threshold.selector.matches("payroll", "prod")
    # A critical burn-rate rule without windows gets the SRE workbook's two page pairs.
    assert isinstance(burn.spec, BurnRateSpec)
    assert burn.spec.windows == (
        BurnWindow(3_600_000, 300_000, 14.4),
        BurnWindow(21_600_000, 1_800_000, 6.0),
    )
    assert burn.window == "1h/5m"


def test_a_wrong_value_names_file_line_rule_and_field() -> None:
    text = GOOD.replace("threshold: 0.2", "threshold: high")
    assert problems(text) == [
        "rules.yaml:8: rule \"bot-error-rate\": threshold: must be a number, got 'high'"
    ]


def test_every_problem_of_a_file_is_reported() -> None:
    text = """\
rules:
  - name: slow
    kind: threshold
    severity: page
    stat: p90_duration_ms
    op: ">"
    threshold: 10
    span: 0
    treshold: 5
  - kind: absence
    severity: critical
"""
    assert problems(text) == [
        "rules.yaml:4: rule \"slow\": severity: must be one of critical, warning, info; got 'page'",
        'rules.yaml:5: rule "slow": stat: must be one of error_rate, failure_rate, '
        "p95_duration_ms, p99_duration_ms, count, errors, failures, retries; got 'p90_duration_ms'",
        'rules.yaml:8: rule "slow": span: must be an integer >= 1, got 0',
        'rules.yaml:9: rule "slow": treshold: unknown field for kind threshold',
        "rules.yaml:10: rule #2: name: is required",
        "rules.yaml:10: rule #2: for: is required",
    ]


def test_exclude_keeps_bots_out_of_a_rule_whatever_else_matches() -> None:
    """One-shot scripts (a cron job that ends) are kept out of ``bot-down``, which would
    otherwise page five minutes after each run."""
    (down,) = parse_rules("""\
rules:
  - name: bot-down
    kind: absence
    severity: critical
    for: 5m
    selector: {exclude: ["cron-*", "oneshot-*"]}
""")
    assert down.selector.excluded == ("cron-*", "oneshot-*")
    assert down.selector.matches("invoice-bot", None)
    assert not down.selector.matches("cron-backup", "prod")
    (listed,) = parse_rules("""\
rules:
  - name: r
    kind: absence
    severity: critical
    for: 5m
    selector: {bots: [cron-a, b], exclude: cron-*}
""")
    assert listed.selector.matches("b", None) and not listed.selector.matches("cron-a", None)
    assert problems(GOOD.replace("env: prod}", "env: prod, excludes: x}")) == [
        'rules.yaml:5: rule "bot-error-rate": selector.excludes: unknown field '
        "(expected bots, glob, env, exclude)"
    ]


def test_nested_fields_are_named_with_their_path() -> None:
    text = """\
rules:
  - name: burn
    kind: burn_rate
    severity: critical
    objective: 99
    windows:
      - {long: 1h, short: 5m, factor: 14.4}
      - long: 5m
        short: 1h
        factor: 6
      - {long: 6h, short: soon, factor: 6}
    annotations:
      summary: "{bot} is burning"
    selector:
      bots: [a, 3]
"""
    assert problems(text) == [
        'rules.yaml:5: rule "burn": objective: must be between 0 and 1 (exclusive), '
        "such as 0.99; got 99",
        'rules.yaml:8: rule "burn": windows[1]: long must be longer than short',
        "rules.yaml:11: rule \"burn\": windows[2].short: must be a duration such as 5m, got 'soon'",
        'rules.yaml:13: rule "burn": annotations.summary: unknown placeholder {bot} '
        "(known: rule, bot_id, value, threshold, window, severity, error_type)",
        'rules.yaml:15: rule "burn": selector.bots: must be a string or a list of strings, '
        "got ['a', 3]",
    ]


def test_duplicate_names_keys_and_reserved_labels_are_refused() -> None:
    text = """\
rules:
  - name: down
    kind: absence
    severity: critical
    for: 5m
  - name: down
    kind: absence
    severity: critical
    for: 10m
    for: 15m
    labels: {severity: high}
"""
    assert problems(text) == [
        'rules.yaml:6: rule "down": name: duplicates the rule at line 2',
        "rules.yaml:10: rule \"down\": for: key 'for' is given twice",
        'rules.yaml:11: rule "down": labels.severity: is set by botwatch',
    ]


def test_a_rate_threshold_outside_0_to_1_is_refused() -> None:
    text = """\
rules:
  - name: errors
    kind: threshold
    severity: warning
    stat: error_rate
    op: ">"
    threshold: 5
  - name: many
    kind: threshold
    severity: warning
    stat: errors
    op: ">"
    threshold: 5
"""
    assert problems(text) == [
        'rules.yaml:7: rule "errors": threshold: a rate is between 0 and 1 (0.05 is 5%), got 5'
    ]


def test_label_and_annotation_names_alertmanager_would_refuse_are_refused() -> None:
    text = """\
rules:
  - name: down
    kind: absence
    severity: critical
    for: 5m
    labels: {team-name: bots, __x: y, ok_1: fine}
    annotations: {runbook-url: "https://r.example", summary: "{bot_id} down"}
"""
    rule = "must be letters, digits and '_', not starting with a digit or '__'"
    assert [p.split(" (Alertmanager")[0] for p in problems(text)] == [
        f'rules.yaml:6: rule "down": labels.team-name: {rule}',
        f'rules.yaml:6: rule "down": labels.__x: {rule}',
        f'rules.yaml:7: rule "down": annotations.runbook-url: {rule}',
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [a\n", "rules.yaml:2: not valid YAML"),
        ("- name: x\n", "rules.yaml:1: expected a mapping with a 'rules' list"),
        ("rules: {}\nextra: 1\n", "rules.yaml:2: unknown top-level key 'extra'"),
        ("rules:\n  - just text\n", "rules.yaml:2: rule #1: rule: must be a mapping of fields"),
    ],
)
def test_malformed_documents_are_refused_with_a_line(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(text))


def test_absence_needs_a_positive_for() -> None:
    text = "rules:\n  - {name: d, kind: absence, severity: info, for: 0}\n"
    assert problems(text) == [
        'rules.yaml:2: rule "d": for: must be longer than 0 for an absence rule'
    ]


def test_load_rules_names_the_file_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD.replace('op: ">"', "op: '=>'"))
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(info.value) == (
        f"{path}:7: rule \"bot-error-rate\": op: must be one of >, >=, <, <=; got '=>'"
    )
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90s", 90_000), ("5m", 300_000), ("1h30m", 5_400_000), ("3d", 259_200_000), ("250ms", 250)],
)
def test_durations_parse_and_format(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
    assert parse_duration(format_duration(ms)) == ms


@pytest.mark.parametrize("text", ["", "5", "m", "5 minutes", "-5m", "1.5h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_template_that_could_fail_when_filled_in_is_refused() -> None:
    # ``{error_type[0]}`` held for a sample type but failed for the empty one a real alert
    # has, and ``{value[0]}`` crashed the loader with a TypeError instead of naming the rule.
    text = """\
rules:
  - name: down
    kind: absence
    severity: critical
    for: 5m
    annotations:
      first: "{error_type[0]}"
      index: "{value[0]} down"
      attribute: "{bot_id.upper}"
      spec: "{bot_id:.0%}"
      nested: "{value:{width}}"
      fine: "{bot_id!r} {value:.0f}s ({threshold:g}) {{literal}}"
"""
    assert problems(text) == [
        'rules.yaml:7: rule "down": annotations.first: {error_type[0]}: a placeholder takes '
        "no index or attribute; write {error_type}",
        'rules.yaml:8: rule "down": annotations.index: {value[0]}: a placeholder takes no '
        "index or attribute; write {value}",
        'rules.yaml:9: rule "down": annotations.attribute: {bot_id.upper}: a placeholder '
        "takes no index or attribute; write {bot_id}",
        'rules.yaml:10: rule "down": annotations.spec: is not a valid template: '
        "Unknown format code '%' for object of type 'str'",
        'rules.yaml:11: rule "down": annotations.nested: unknown placeholder {width} '
        "(known: rule, bot_id, value, threshold, window, severity, error_type)",
    ]


def test_a_template_that_fails_anyway_is_sent_unfilled_saying_why() -> None:
    context = {"bot_id": "invoice-bot", "error_type": ""}
    assert fill_in("{bot_id} down", context) == "invoice-bot down"
    assert fill_in("{error_type[0]}", context) == (
        "{error_type[0]} [could not be filled in: IndexError: string index out of range]"
    )
