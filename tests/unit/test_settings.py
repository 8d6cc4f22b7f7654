"""Settings: defaults, environment, flags on top, and errors that name the variable."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from botwatch.commands.worker import listens_on_loopback_only
from botwatch.settings import Settings, SettingsError, describe_settings
from sinks.config import display_url
from streams.config import StreamsConfig


def test_defaults() -> None:
    settings = Settings.load(environ={})
    assert settings.kafka_bootstrap == "localhost:9092"
    assert settings.opensearch_url == "http://localhost:9200"
    assert settings.home.name == "botwatch"


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {"BOTWATCH_KAFKA_BOOTSTRAP": "k:1", "BOTWATCH_STACK_TIMEOUT": "5", "BOTWATCH_HOME": "/x"}
    settings = Settings.load(environ=env)
    assert settings.kafka_bootstrap == "k:1"
    assert settings.stack_timeout_s == 5.0
    assert settings.home == Path("/x")
    flagged = Settings.load(environ=env, flags={"BOTWATCH_KAFKA_BOOTSTRAP": "f:2"})
    assert flagged.kafka_bootstrap == "f:2"
    unset_flag = Settings.load(environ=env, flags={"BOTWATCH_KAFKA_BOOTSTRAP": None})
    assert unset_flag.kafka_bootstrap == "k:1"


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(
        SettingsError, match="BOTWATCH_KAFKA_CONTROLLER_PORT='x' is not a valid int"
    ):
        Settings.load(environ={"BOTWATCH_KAFKA_CONTROLLER_PORT": "x"})


@pytest.mark.parametrize("prefix", ["BotWatch", "-bw", "bw/x", "bw x", "b" * 201])
def test_an_index_prefix_opensearch_would_refuse_is_refused_naming_the_variable(
    prefix: str,
) -> None:
    # It was found by OpenSearch at setup's first template, after the topics, as a traceback.
    with pytest.raises(SettingsError, match=r"BOTWATCH_INDEX_PREFIX=.* cannot begin an index"):
        Settings.load(environ={"BOTWATCH_INDEX_PREFIX": prefix})
    assert Settings.load(environ={"BOTWATCH_INDEX_PREFIX": "bw-test.1"})


def test_an_opensearch_url_with_a_user_but_no_password_is_refused_without_showing_it() -> None:
    """opensearch-py failed on it with a TypeError; a user name alone may be a token."""
    url = "https://T0KEN@search.example:9200/?api_key=K3Y"
    with pytest.raises(SettingsError, match="names a user without a password") as raised:
        Settings.load(environ={"BOTWATCH_OPENSEARCH_URL": url})
    assert "T0KEN" not in str(raised.value) and "K3Y" not in str(raised.value)
    assert Settings.load(environ={"BOTWATCH_OPENSEARCH_URL": "http://u:p@localhost:9200"})
    for broken in ("http://[::1:9200", "http://localhost:abc"):  # a traceback before
        with pytest.raises(SettingsError, match="BOTWATCH_OPENSEARCH_URL is not a URL"):
            Settings.load(environ={"BOTWATCH_OPENSEARCH_URL": broken})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://localhost:9200", "http://localhost:9200"),
        ("https://admin:s3cret@os.example:9200/base", "https://admin:***@os.example:9200/base"),
        ("https://T0KEN@os.example", "https://***@os.example"),
        ("http://localhost:9/?api_key=K3Y#frag", "http://localhost:9/"),
        ("http://u:p@[::1]:9200", "http://u:***@[::1]:9200"),
        ("http://host:notaport", "http://host:notaport"),
    ],
)
def test_an_opensearch_url_in_messages_shows_no_credentials_nor_query(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_every_setting_is_documented_once() -> None:
    rows = describe_settings()
    names = [env for env, _, _ in rows]
    assert len(names) == len(set(names))
    assert all(name.startswith("BOTWATCH_") for name in names)
    assert all(help_text for _, _, help_text in rows)


def test_stack_config_follows_settings(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={"BOTWATCH_HOME": str(tmp_path), "BOTWATCH_OPENSEARCH_URL": "http://h:19200"}
    )
    config = settings.stack_config()
    assert config.home == tmp_path
    assert config.opensearch_port == 19200
    assert config.dist_dir == tmp_path / "dist"


def test_the_defaults_are_settings_the_worker_can_run_with() -> None:
    assert StreamsConfig().problems() == []


def test_settings_the_worker_cannot_run_with_are_each_named() -> None:
    config = StreamsConfig(
        batch_max=0, lateness_s=-5, idle_close_s=0, session_timeout_s=1, web_port=70000
    )
    problems = config.problems()
    assert problems[:3] == [
        "BOTWATCH_BATCH_MAX=0: must be 1 or more",
        "BOTWATCH_ALLOWED_LATENESS_S=-5: must be 0 or more",
        "BOTWATCH_IDLE_CLOSE_S=0: must be more than 0",
    ]
    assert problems[3].startswith(
        "BOTWATCH_SESSION_TIMEOUT_S=1: must be from 6 s (the broker's group.min.session."
    )
    assert problems[4:] == ["BOTWATCH_WEB_PORT=70000: must be 1 to 65535"]
    # faust refuses a session timeout above its request timeout; port 0 listens on a port
    # nobody is told of.
    too_long = StreamsConfig(session_timeout_s=120, web_port=0).problems()
    assert [p.split(":")[0] for p in too_long] == [
        "BOTWATCH_SESSION_TIMEOUT_S=120",
        "BOTWATCH_WEB_PORT=0",
    ]


def _worker(env: dict[str, str]) -> Any:
    from click.testing import CliRunner

    from botwatch.cli import main

    # A broker nobody answers at: each refusal must come before any connection.
    return CliRunner().invoke(
        main,
        ["worker", "--sink", "discard"],
        env={"BOTWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1", **env},
    )


def test_the_worker_refuses_a_batch_of_no_records_before_it_joins() -> None:
    # It used to spin at 100% CPU, never reading, deaf to SIGTERM.
    result = _worker({"BOTWATCH_BATCH_MAX": "0"})
    assert result.exit_code != 0
    assert "error: settings the worker cannot run with, it did not start:" in result.output
    assert "BOTWATCH_BATCH_MAX=0: must be 1 or more" in result.output


def test_the_worker_refuses_a_web_port_it_cannot_listen_on_before_it_joins() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _worker({"BOTWATCH_WEB_PORT": str(port)})
    assert result.exit_code != 0
    assert f"error: the worker cannot serve its web endpoints on 127.0.0.1:{port} " in (
        result.output
    )
    assert "address already in use" in result.output.lower()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("", False), ("::", False), ("10.1.2.3", False),
     ("worker.example", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_this_machine_only(host: str, loopback: bool) -> None:
    assert listens_on_loopback_only(host) is loopback


def test_the_worker_warns_when_its_endpoints_listen_beyond_this_machine() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = _worker({"BOTWATCH_WEB_HOST": "0.0.0.0", "BOTWATCH_WEB_PORT": str(port)})
    assert "warning: BOTWATCH_WEB_HOST='0.0.0.0': the web endpoints" in result.output
    assert "without authentication" in result.output
    quiet = _worker({"BOTWATCH_WEB_PORT": str(port)})
    assert "warning" not in quiet.output and "Kafka at 127.0.0.1:1" in quiet.output


def test_a_list_default_is_shown_as_the_variable_is_written() -> None:
    [(_, default, help_text)] = [r for r in describe_settings() if r[0] == "BOTWATCH_REDACT_KEYS"]
    assert default.startswith("password,passwd,") and default.endswith(",credential")
    assert "replaces the default one" in help_text
