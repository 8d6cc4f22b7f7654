"""botwatch's one settings object: defaults, overridden by environment, overridden by flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botwatch.stack.config import StackConfig


def default_home() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "botwatch"


def _setting(default: Any, env: str, help: str) -> Any:
    factory = default if callable(default) else None
    if factory is not None:
        return field(default_factory=factory, metadata={"env": env, "help": help})
    return field(default=default, metadata={"env": env, "help": help})


class SettingsError(ValueError):
    """A setting has a value botwatch cannot use."""


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = _setting(
        "localhost:9092", "BOTWATCH_KAFKA_BOOTSTRAP", "Kafka bootstrap servers (host:port,...)."
    )
    opensearch_url: str = _setting(
        "http://localhost:9200", "BOTWATCH_OPENSEARCH_URL", "OpenSearch base URL."
    )
    home: Path = _setting(
        default_home,
        "BOTWATCH_HOME",
        "Cache and data directory of the local stack (downloads, data, logs, pid files).",
    )
    kafka_version: str = _setting(
        "4.1.1", "BOTWATCH_KAFKA_VERSION", "Apache Kafka version the local stack fetches."
    )
    kafka_controller_port: int = _setting(
        9093, "BOTWATCH_KAFKA_CONTROLLER_PORT", "KRaft controller port of the local broker."
    )
    kafka_heap: str = _setting("1g", "BOTWATCH_KAFKA_HEAP", "JVM heap of the local broker.")
    opensearch_version: str = _setting(
        "2.19.6", "BOTWATCH_OPENSEARCH_VERSION", "OpenSearch version the local stack fetches."
    )
    opensearch_transport_port: int = _setting(
        9300, "BOTWATCH_OPENSEARCH_TRANSPORT_PORT", "Transport port of the local OpenSearch node."
    )
    opensearch_heap: str = _setting(
        "1g", "BOTWATCH_OPENSEARCH_HEAP", "JVM heap of the local OpenSearch node."
    )
    opensearch_user: str = _setting(
        "botwatch",
        "BOTWATCH_OPENSEARCH_USER",
        "Non-root user OpenSearch runs as when botwatch runs as root (created if missing).",
    )
    java_home: str = _setting(
        "", "BOTWATCH_JAVA_HOME", "JDK (17+) for Kafka and OpenSearch; default JAVA_HOME or PATH."
    )
    stack_timeout_s: float = _setting(
        180.0, "BOTWATCH_STACK_TIMEOUT", "Seconds to wait for a stack node to become ready."
    )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default: the process environment) and explicit overrides.

        Overrides whose value is None are ignored, so unset command-line flags fall through.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _convert(f, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        return cls(**values)

    def stack_config(self) -> StackConfig:
        return StackConfig(
            home=self.home,
            kafka_bootstrap=self.kafka_bootstrap,
            kafka_controller_port=self.kafka_controller_port,
            kafka_version=self.kafka_version,
            kafka_heap=self.kafka_heap,
            opensearch_url=self.opensearch_url,
            opensearch_transport_port=self.opensearch_transport_port,
            opensearch_version=self.opensearch_version,
            opensearch_heap=self.opensearch_heap,
            opensearch_user=self.opensearch_user,
            java_home=self.java_home or None,
            start_timeout_s=self.stack_timeout_s,
        )


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw).expanduser()
    except ValueError:
        raise SettingsError(
            f"{f.metadata['env']}={raw!r} is not a valid {kind}; unset it or give a {kind}."
        ) from None
    return raw


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, for `botwatch --help`."""
    rows = []
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = str(f.default)
        else:
            default = str(f.default_factory())  # type: ignore[misc]
        rows.append((f.metadata["env"], default, f.metadata["help"]))
    return rows
