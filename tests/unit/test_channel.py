"""The prefork pool's pipe (``multiq.pools.channel``): frames in, frames out."""
from __future__ import annotations

import pickle
import socket
import threading

import pytest

from multiq.pools.channel import Channel


def _pair() -> tuple:
    a, b = socket.socketpair()
    return Channel(a), Channel(b)


def test_every_waiting_frame_comes_in_one_receive() -> None:
    a, b = _pair()
    for i in range(3):
        a.send([("job", i)])
    assert b.receive() == [("job", 0), ("job", 1), ("job", 2)]
    assert not b.poll()


def test_a_frame_larger_than_one_read_arrives_whole() -> None:
    a, b = _pair()
    big = b"x" * 300_000
    sender = threading.Thread(target=a.send, args=([big, "after"],))
    sender.start()
    assert b.receive() == [big, "after"]
    sender.join(5)


def test_closed_peer_raises_eof_after_its_last_frames() -> None:
    a, b = _pair()
    a.send(["last words"])
    a.close()
    assert b.poll() and b.receive() == ["last words"]
    assert b.poll()  # end of file is readable too
    with pytest.raises(EOFError):
        b.receive()


def test_unpicklable_items_raise_before_anything_is_sent() -> None:
    a, b = _pair()
    with pytest.raises((pickle.PicklingError, AttributeError)):
        a.send([lambda: None])
    a.send(["fine"])
    assert b.receive() == ["fine"]
