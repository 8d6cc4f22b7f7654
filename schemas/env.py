"""The one convention every component uses for its settings: BOTWATCH_* environment variables.

Each component (producer SDK, stream worker, sink, local stack) declares a frozen dataclass
whose fields carry their environment variable and help text. ``from_env`` builds it; the
command line overlays its flags onto the environment mapping, so a flag such as
``--kafka-bootstrap`` reaches every component that reads ``BOTWATCH_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting has a value botwatch cannot use."""


def setting(default: Any, env: str, help: str) -> Any:
    """A dataclass field read from ``env``; ``default`` may be a zero-argument factory."""
    metadata = {"env": env, "help": help}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def nested(cls: Callable[[], Any]) -> Any:
    """A field holding another component's settings, loaded from the same environment."""
    return dataclasses.field(default_factory=cls, metadata={"nested": cls})


def from_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from defaults overridden by non-empty variables in ``environ``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "nested" in f.metadata:
            values[f.name] = from_env(f.metadata["nested"], environ)
            continue
        raw = environ.get(f.metadata["env"])
        if raw is not None and raw != "":
            values[f.name] = _convert(f, raw)
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting of ``cls``, nested included."""
    rows: dict[str, tuple[str, str, str]] = {}
    for f in dataclasses.fields(cls):
        if "nested" in f.metadata:
            for row in describe(f.metadata["nested"]):
                rows.setdefault(row[0], row)
            continue
        missing = f.default is dataclasses.MISSING
        default = f.default_factory() if missing else f.default  # type: ignore[misc]
        # As the variable is written: a list comma-separated, not as a Python tuple.
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        rows.setdefault(f.metadata["env"], (f.metadata["env"], shown, f.metadata["help"]))
    return list(rows.values())


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    kind = kind.replace(" | None", "")
    env = f.metadata["env"]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw).expanduser()
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(
            f"{env}={raw!r} is not a valid {kind}: unset {env} or give it a {kind} value."
        ) from None
    return raw
