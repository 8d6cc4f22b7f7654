"""``botwatch demo`` refuses a port where something already listens, instead of reading
another worker's counters and printing a wrong summary."""

from __future__ import annotations

import socket

import pytest

from botwatch.commands.common import BotwatchError
from botwatch.commands.demo import _refuse_taken_port


def test_the_demo_refuses_a_port_already_listened_on_and_takes_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BotwatchError, match=rf"already listens on 127\.0\.0\.1:{port}"):
            _refuse_taken_port("127.0.0.1", port)
    _refuse_taken_port("127.0.0.1", port)  # closed now: nothing listens
