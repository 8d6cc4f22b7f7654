"""Fixtures of the integration tests that start real peers (Alertmanager)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from support import Alertmanager


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run `make test-tools`")
    am = Alertmanager(binary, tmp_path_factory.mktemp("alertmanager"))
    am.start()
    try:
        yield am
    finally:
        am.stop()
