"""The design's one-way data flow, enforced on the imports of every module."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "producers", "streams", "sinks", "botwatch")

# package -> botwatch packages it must not import
FORBIDDEN = {
    "schemas": {"producers", "streams", "sinks", "botwatch"},
    "producers": {"streams", "sinks", "botwatch"},
    "streams": {"sinks", "botwatch", "producers"},
    "sinks": {"streams", "botwatch", "producers"},
    "botwatch": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_follow_the_data_flow(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) & FORBIDDEN[package]
    }
    assert offenders == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_ships_its_type_hints(package: str) -> None:
    """PEP 561: without ``py.typed`` in the installed package, mypy takes a bot's uses of
    the SDK (``producers``) as untyped."""
    assert (ROOT / package / "py.typed").is_file()
    with (ROOT / "pyproject.toml").open("rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["*"]
