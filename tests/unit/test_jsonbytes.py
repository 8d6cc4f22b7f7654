"""``json_bytes``: orjson's output, holding no more memory than its length."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from schemas.jsonbytes import json_bytes


@pytest.mark.parametrize("size", [0, 300, 5_000, 100_000])
def test_same_bytes_as_orjson_in_the_memory_of_their_length(size: int) -> None:
    doc = {"message": "x" * size, "n": [1, 2.5, None], "ok": True}
    assert json_bytes(doc) == orjson.dumps(doc)
    tracemalloc.start()
    try:
        kept = [json_bytes(doc) for _ in range(200)]
        per_doc = tracemalloc.get_traced_memory()[0] / len(kept)
    finally:
        tracemalloc.stop()
    assert per_doc < len(kept[0]) + 200  # the bytes object's header and the list's slot


def test_default_and_option_are_passed_on() -> None:
    assert json_bytes({"b": {1}, "a": 1}, default=sorted, option=orjson.OPT_SORT_KEYS) == (
        b'{"a":1,"b":[1]}'
    )
