"""Redaction: planted secrets never survive; everything else is left exactly as it was."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sinks.config import SinkConfig
from sinks.redact import REDACTED, Redactor

R = Redactor(SinkConfig().redact_keys)

SECRET_KEYS = [
    "password",
    "X-Api-Key",
    "db_PASSWORD",
    "refresh-token",
    "Authorization",
    "client_secret",
    "Set-Cookie",
    "apikey",
    "AWS_ACCESS_KEY",
    "privateKey_token",
    "accessKey",
    "api.key",
    "API KEY",
    "Db Pass-Word",
]
TEXT_TEMPLATES = [
    "login failed password={s} for user",
    "GET /x?token={s}&page=2",
    "Authorization: Bearer {s}",
    "curl -H 'X-Api-Key: {s}' https://example.com",
    "connect https://bob:{s}@db.example.com:5432/app",
    'payload {{"client_secret": "{s}"}}',
    "sent Bearer {s} upstream",
    "clone https://{s}@github.com/org/repo.git",
    "connect https://bob:pa/{s}@db.example.com",
    "connect https://bob:p@{s}@db.example.com",
    'config {{"password": ["{s}", "x"], "retries": 3}}',
    'config {{"api.key": {{"value": "{s}"}}}}',
    'quoted "token": "ab\\"{s}" tail',
    "accessKey={s}",
    'ruby {{:password=>"{s}"}}',
    "php ['api_key' => '{s}', 'x' => 1]",
    "<password>{s}</password>",
    '<client-secret kind="x">{s}</client-secret>',
    "deploy --password {s} --verbose",
    "run -token {s}",
    'deploy --password "{s} two" --verbose',
    "Command '['mysql', '--password', '{s}']' returned non-zero exit status 1.",
    "api__key={s}",
]

# The shapes of secret an identifier (job_id, host, env) loses: bearer tokens, URL credentials.
IDENTIFIER_TEMPLATES = [
    "Authorization: Bearer {s}",
    "connect https://bob:{s}@db.example.com:5432/app",
    "sent Bearer {s} upstream",
    "clone https://{s}@github.com/org/repo.git",
    "connect https://bob:pa/{s}@db.example.com",
    "connect https://bob:p@{s}@db.example.com",
]

plain_text = st.text(
    alphabet="abcdefghijklmnoqrsuvwxyz0123456789 .,!?-_=ABCDEFGHIJKLMNOQRSUVWXYZ", max_size=30
)
plain_key = st.text(alphabet="abcdefghijklmnoqruvwxyz_", min_size=1, max_size=12).filter(
    lambda k: not R.is_secret_key(k)
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), plain_text)
meta_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(plain_key, children, max_size=4)
    ),
    max_leaves=20,
)
secret = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24).map(
    lambda s: "Zq9" + s
)


def event(meta: Any = None, message: str = "hello", **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": "e1",
        "timestamp": "2026-01-02T03:04:05Z",
        "bot_id": "bot",
        "level": "info",
        "message": message,
        "schema_version": 1,
        **extra,
    }
    if meta is not None:
        ev["meta"] = meta
    return ev


def plant(meta: Any, path: list[int], key: str, value: str) -> Any:
    """Put ``{key: value}`` somewhere inside ``meta`` (descending along ``path``)."""
    if isinstance(meta, dict) and meta and path:
        child = sorted(meta)[path[0] % len(meta)]
        return {**meta, child: plant(meta[child], path[1:], key, value)}
    if isinstance(meta, list) and meta and path:
        i = path[0] % len(meta)
        return [*meta[:i], plant(meta[i], path[1:], key, value), *meta[i + 1 :]]
    if isinstance(meta, dict):
        return {**meta, key: value}
    return {"wrapped": meta, "more": [{key: value}]}


@settings(max_examples=300)
@given(
    meta=st.dictionaries(plain_key, meta_values, max_size=5),
    path=st.lists(st.integers(0, 10), max_size=5),
    key=st.sampled_from(SECRET_KEYS),
    value=secret,
    template=st.sampled_from(TEXT_TEMPLATES),
    text_secret=secret,
    around=plain_text,
    other_template=st.sampled_from(TEXT_TEMPLATES),
    other_secret=secret,
    field=st.sampled_from(["job_id", "host", "env", "type"]),
    id_template=st.sampled_from(IDENTIFIER_TEMPLATES),
)
def test_planted_secrets_never_survive(
    meta: dict[str, Any],
    path: list[int],
    key: str,
    value: str,
    template: str,
    text_secret: str,
    around: str,
    other_template: str,
    other_secret: str,
    field: str,
    id_template: str,
) -> None:
    # flat_object indexes key paths as well as values: a key name is free text too; so is
    # error.type; job_id, host and env (identifiers) lose bearer tokens and URL credentials.
    other = other_template.format(s=other_secret)
    planted = plant(plant(meta, path, key, value), path[::-1], other, "kept")
    message = f"{around} {template.format(s=text_secret)} {around}"
    error = {"message": message, "stack": f"line\n{message}\nend"}
    extra: dict[str, Any] = (
        {"error": {**error, field: other}}
        if field == "type"
        else {
            "error": error,
            field: id_template.format(s=other_secret),
        }
    )
    ev = event(planted, message, **extra)
    raw = orjson.dumps(ev)
    assert R.needs_redaction(raw)
    out = orjson.dumps(R.redact_event(ev)).decode()
    assert value not in out
    assert text_secret not in out
    assert other_secret not in out
    assert REDACTED in out


@settings(max_examples=300)
@given(meta=st.dictionaries(plain_key, meta_values, max_size=5), message=plain_text)
def test_data_without_secrets_is_unchanged(meta: dict[str, Any], message: str) -> None:
    ev = event(meta, message, host="host-1")
    assert R.redact_event(ev) == ev


any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
any_value = st.recursive(
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), any_text),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(any_text, c, max_size=3)),
    max_leaves=10,
)


@settings(max_examples=500)
@given(meta=st.dictionaries(any_text, any_value, max_size=4), message=any_text)
def test_fast_path_only_skips_events_redaction_would_not_change(
    meta: dict[str, Any], message: str
) -> None:
    ev = event(meta, message)
    raw = orjson.dumps(ev)
    assume(not R.needs_redaction(raw))
    assert R.redact_event(ev) == ev


def test_fast_path_sees_through_json_escapes() -> None:
    raw = b'{"message":"x","meta":{"pass\\u0077ord":"hunter2"}}'
    assert R.needs_redaction(raw)
    assert R.needs_redaction(b'{"message":"https:\\/\\/u:p@h"}')
    assert not R.needs_redaction(b'{"message":"all good","meta":{"count":3}}')


def test_fast_path_is_case_insensitive_and_knows_separators() -> None:
    assert R.needs_redaction(b'{"meta":{"X-API-KEY":"k"}}')
    assert R.needs_redaction(b'{"meta":{"Private-Key":"k"}}')


def test_text_rules() -> None:
    assert R.redact_text("https://bob:hunter2@example.com/x") == (
        "https://bob:[REDACTED]@example.com/x"
    )
    assert R.redact_text("Authorization: Basic dXNlcjpwYXNz\nnext") == (
        "Authorization: [REDACTED]\nnext"
    )
    assert R.redact_text('{"password": "two words"}') == '{"password": "[REDACTED]"}'
    assert R.redact_text("a=1&token=abc&b=2") == "a=1&token=[REDACTED]&b=2"
    assert R.redact_text("call Bearer abc.def-ghi done") == "call Bearer [REDACTED] done"
    # ODBC connection strings and key files, as bots log them.
    assert R.redact_text("Driver={SQL Server};Uid=bot;Pwd=PwdShort33;") == (
        "Driver={SQL Server};Uid=bot;Pwd=[REDACTED];"
    )
    assert R.redact_text("key loaded, passphrase: PASSPHRASE44") == (
        "key loaded, passphrase: [REDACTED]"
    )


def test_secret_key_value_is_replaced_whole_and_other_fields_kept() -> None:
    ev = event({"auth": {"token": {"nested": "x"}}, "n": 1}, job_id="job-7", host="h1")
    out = R.redact_event(ev)
    assert out["meta"] == {"auth": {"token": REDACTED}, "n": 1}
    assert {k: v for k, v in out.items() if k != "meta"} == {
        k: v for k, v in ev.items() if k != "meta"
    }
    assert ev["meta"]["auth"]["token"] == {"nested": "x"}  # the input is not changed


def test_identifiers_keep_their_words_and_lose_only_credentials() -> None:
    for name in ("job_id", "host", "env"):
        for text in ("token-refresher:42", "auth-token-01:9000", "cookie-sync:7", "pw=1"):
            ev = event({"n": 1}, "token=x", **{name: text})  # the message flags the record
            assert R.redact_event(ev)[name] == text
        ev = event(None, **{name: "https://ci:S1@build.local/7 Bearer S2"})
        assert R.redact_event(ev)[name] == ("https://ci:[REDACTED]@build.local/7 Bearer [REDACTED]")


def test_error_strings_get_the_text_rules_not_the_key_rule() -> None:
    # "age" is in "message": the key rule would have replaced the whole message.
    r = Redactor(["age", "token"])
    error = {"type": "Bad", "message": "token=S1 at page 2", "stack": "s"}
    out = r.redact_event(event(None, error=error))["error"]
    assert out == {"type": "Bad", "message": "token=[REDACTED] at page 2", "stack": "s"}


def test_a_key_the_rules_change_never_takes_another_keys_place() -> None:
    meta = {"https://u:S1@h": 1, "https://u:S2@h": 2, "https://u:[REDACTED]@h": 3, "x": 4}
    out = R.redact_event(event(meta))["meta"]
    assert out == {
        "https://u:[REDACTED]@h (2)": 1,
        "https://u:[REDACTED]@h (3)": 2,
        "https://u:[REDACTED]@h": 3,
        "x": 4,
    }
    nested = R.redact_value({"a": [{"Bearer S3": {"password=S4": "v"}}]})
    assert nested == {"a": [{"Bearer [REDACTED]": {"password=[REDACTED]": REDACTED}}]}


def test_configured_keys_with_many_separators_still_reach_the_slow_path() -> None:
    r = Redactor(["my_special_key"])
    raw = b'{"meta":{"MY-special_KEY":"v"}}'
    assert r.needs_redaction(raw)
    assert r.redact_event(event({"MY-special_KEY": "v"}))["meta"] == {"MY-special_KEY": REDACTED}


def test_key_names_fold_case_and_separators() -> None:
    for key in ("accessKey", "privateKey", "api.key", "API KEY", "x_Api-Key", "pass_word",
                "credentials", "DB-Credential"):  # fmt: skip
        assert R.is_secret_key(key), key
        raw = orjson.dumps(event({key: "Zq9secret"}))
        assert R.needs_redaction(raw), key
        assert R.redact_event(orjson.loads(raw))["meta"] == {key: REDACTED}
    for key in ("monkey", "keyboard", "user", "pass/word", 'pass"word'):
        assert not R.is_secret_key(key), key


def test_url_credentials_in_every_shape() -> None:
    assert R.redact_text("https://user:pa/ss@host/x") == "https://user:[REDACTED]@host/x"
    assert R.redact_text("at https://u:p@ss@host ok") == "at https://u:[REDACTED]@host ok"
    assert R.redact_text("git https://ghp_abc@github.com/o/r") == (
        "git https://[REDACTED]@github.com/o/r"
    )
    # no credentials: nothing to redact
    assert R.redact_text("see https://example.com/a?b=c, mail bob@example.com") == (
        "see https://example.com/a?b=c, mail bob@example.com"
    )


def test_values_that_are_lists_objects_or_hold_escaped_quotes() -> None:
    assert R.redact_text('{"password": ["S1", "S2"], "n": 1}') == '{"password": [REDACTED]'
    assert R.redact_text('"token": {"v": "S1"}\nnext') == '"token": [REDACTED]\nnext'
    assert R.redact_text('"password": "ab\\"cd" tail') == '"password": "[REDACTED]" tail'
    assert R.redact_text('body {\\"password\\": \\"S5\\"}') == ('body {\\"password\\": [REDACTED]}')


def test_text_that_is_not_json_has_its_escapes_resolved_before_the_rules() -> None:
    hidden = '{"pass\\u0077ord":"S1", "m":"https:\\/\\/u:S2@h", "v":"a\\"b" broken'
    assert R.needs_redaction(hidden.encode())
    out = R.redact_unparsed(hidden)
    assert "S1" not in out and "S2" not in out
    assert out.startswith('{"password":"[REDACTED]"')
    # an escaped backslash is not the start of an escape; a surrogate pair is joined
    assert R.redact_unparsed("a \\\\u0077 \\ud83d\\ude00 token=x") == (
        "a \\\\u0077 \U0001f600 token=[REDACTED]"
    )


def test_flagged_records_of_a_joined_batch() -> None:
    from sinks.redact import RECORD_SEPARATOR

    raws = [
        b'{"message":"ok"}',
        b'{"meta":{"Api.Key":"v"}}',
        b'{\n "message": "pretty"\n}',
        b'{"message":"a"}',
        b'{"message":"Bearer x and token=y"}',
        b"",
        b'{"message":"pass\\u0077ord"}',
    ]
    assert R.flagged_records(RECORD_SEPARATOR.join(raws)) == {1, 4, 6}
    assert R.flagged_records(RECORD_SEPARATOR.join(raws[:1])) == set()


def test_an_unterminated_value_is_redacted_to_the_end_of_its_line() -> None:
    # Cut-off JSON is the usual dead letter that is not JSON.
    assert R.redact_unparsed('{"password":"hunter2') == '{"password":[REDACTED]'
    assert R.redact_text("x 'token': 'abc\nnext") == "x 'token': [REDACTED]\nnext"
    assert R.redact_text('body {\\"password\\": \\"S5') == 'body {\\"password\\": [REDACTED]'


def test_several_urls_in_one_text() -> None:
    assert R.redact_text("a https://a:b@c https://d:e@f z") == (
        "a https://a:[REDACTED]@c https://d:[REDACTED]@f z"
    )
    assert R.redact_text("x://u:" + "a" * 50) == "x://u:" + "a" * 50  # no "@": no password


@pytest.mark.parametrize(
    "field",
    [
        {"password": "hunter2"},
        {"api key": ["hunter2"]},
        {'secret"x': "hunter2"},
        {"error": {"type": "E", "token": "hunter2"}},
        {"Authorization": "Basic hunter2"},
    ],
)
def test_a_validation_reason_loses_what_a_secret_field_held(field: dict[str, Any]) -> None:
    from schemas import EventError, decode_event
    from streams.dlq import exception_text

    event = {"event_id": "e", "timestamp": "2026-12-07T10:00:00Z", "bot_id": "b",
             "level": "info", "message": "m", "schema_version": 1, **field}  # fmt: skip
    with pytest.raises(EventError) as caught:
        decode_event(orjson.dumps(event))
    for text in (caught.value.reason, exception_text(caught.value)):
        assert "hunter2" in text  # as the dead-letter topic's headers keep it
        redacted = R.redact_reason(text)
        assert "hunter2" not in redacted
        assert redacted.endswith(", got [REDACTED]")
        # What was wrong stays readable: the contract's rule text is botwatch's own words.
        assert ": is not allowed (" in redacted


def test_a_reason_without_anything_to_redact_keeps_what_the_field_held() -> None:
    reason = "level: must be one of debug, info, warning, error, critical, got 'fatal'"
    assert R.redact_reason(reason) == reason
    assert R.redact_reason("windowing failed: token=abc") == "windowing failed: token=[REDACTED]"


def test_text_without_a_value_after_a_name_is_kept() -> None:
    for text in ("password reset for alice", "the token-refresher ran", "<password/> ok",
                 "no-password-needed here", "--password --verbose"):  # fmt: skip
        assert R.redact_text(text) == text
