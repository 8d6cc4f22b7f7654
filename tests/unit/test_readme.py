"""The README is the newcomer's manual: it must name every setting and the two commands."""

from __future__ import annotations

from pathlib import Path

from botwatch.settings import describe_settings

ROOT = Path(__file__).resolve().parents[2]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [env for env, _, _ in describe_settings() if f"`{env}`" not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test    #" in readme
    assert "make demo    #" in readme
    assert "\nmake test\n" in ci
