"""``botwatch emit --meta KEY=VALUE``: JSON where the value is JSON, and text where reading
it as JSON would change what the script wrote."""

from __future__ import annotations

import click
import pytest

from botwatch.commands.emit import _parse_meta


def test_values_are_json_when_json_and_numbers_only_when_they_read_back_as_written() -> None:
    pairs = (
        "n=42", "neg=-7", "ratio=3.5", "ok=true", "none=null", "list=[1,2]", 'obj={"a":1}',
        "host=db-1", "version=1.10", "build=2e3", "order=123456789012345678901234",
    )  # fmt: skip
    assert _parse_meta(pairs) == {
        "n": 42,
        "neg": -7,
        "ratio": 3.5,
        "ok": True,
        "none": None,
        "list": [1, 2],
        "obj": {"a": 1},
        "host": "db-1",
        "version": "1.10",
        "build": "2e3",
        "order": "123456789012345678901234",
    }


@pytest.mark.parametrize("pairs", [("novalue",), ("=x",), ("a=1", "a=2")])
def test_a_pair_that_is_not_key_value_once_is_refused(pairs: tuple[str, ...]) -> None:
    with pytest.raises(click.BadParameter):
        _parse_meta(pairs)
