"""Under daphne, a write to a TCP connection with nothing waiting is sent at once, not at the
reactor's next turn; what cannot be sent at once is buffered, in order, as Twisted does."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from twisted.internet import main, tcp
from twisted.internet.protocol import Protocol

from sioless.twisted_writes import write_through


class Writers:
    """The part of a reactor a connection tells when it has data waiting to be written."""

    def __init__(self) -> None:
        self.waiting: set[tcp.Connection] = set()

    def addWriter(self, writer: tcp.Connection) -> None:
        self.waiting.add(writer)

    def removeWriter(self, writer: tcp.Connection) -> None:
        self.waiting.discard(writer)


@pytest.fixture
def pair() -> Iterator[tuple[tcp.Connection, socket.socket, Writers]]:
    write_through()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    writers = Writers()
    connection = tcp.Connection(ours, Protocol(), writers)
    connection.connected = True
    try:
        yield connection, peer, writers
    finally:
        ours.close()
        peer.close()


def received(peer: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


def test_a_write_with_nothing_waiting_is_sent_at_once(pair: tuple[tcp.Connection, socket.socket, Writers]) -> None:
    connection, peer, writers = pair
    connection.write(b"\x81\x0242")
    assert peer.recv(100) == b"\x81\x0242"
    assert not writers.waiting  # no turn of the reactor was asked for


def test_what_the_socket_does_not_take_waits_and_later_writes_wait_behind_it(
    pair: tuple[tcp.Connection, socket.socket, Writers],
) -> None:
    connection, peer, writers = pair
    big = bytes(range(256)) * 16384  # 4 MiB: more than a socket's buffer takes
    connection.write(big)
    assert writers.waiting == {connection}
    connection.write(b"after")  # not sent ahead of what waits
    sent = received(peer, 1024)
    while writers.waiting:
        assert connection.doWrite() is None
        sent += peer.recv(1 << 20)
    assert sent + received(peer, len(big) + 5 - len(sent)) == big + b"after"


def test_a_write_to_a_connection_whose_peer_is_gone_is_left_to_the_reactor(
    pair: tuple[tcp.Connection, socket.socket, Writers],
) -> None:
    connection, peer, writers = pair
    peer.close()
    connection.write(b"lost")
    assert writers.waiting == {connection}
    assert connection.doWrite() is main.CONNECTION_LOST  # the reactor then loses the connection
