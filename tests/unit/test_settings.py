"""Settings: defaults, environment, flags on top, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from botwatch.settings import Settings, SettingsError, describe_settings


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
