"""Which Socket.IO parser the server speaks, as Node's ``parser`` option: every client of a server
uses the same one (``SIOLESS["PARSER"]``)."""

from __future__ import annotations

import functools
import json
from importlib import import_module
from typing import Protocol, cast

from .engineio import Frame
from .socketio import EventEncoding, Packet, PartialPacket

#: The parsers sioless has, by the name ``SIOLESS["PARSER"]`` gives them.
BUILT_IN = {"default": "sioless.protocol.socketio", "msgpack": "sioless.protocol.msgpack"}


class Parser(Protocol):
    """What a parser module provides (:mod:`sioless.protocol.socketio` is the default one)."""

    def encode(self, packet: Packet, encoder: type[json.JSONEncoder] | None = None) -> list[Frame]:
        """A packet's frames; PayloadError for data that cannot be sent."""

    #: An EVENT packet's frames; PayloadError naming the event for data that cannot be sent.
    encode_event: EventEncoding

    def with_ack_id(self, frames: list[Frame], namespace: str, ack_id: int) -> list[Frame]:
        """The frames of an encoded packet without an ack id, asking for ack ``ack_id``."""

    def with_offset(self, frames: list[Frame], offset: str) -> list[Frame]:
        """The frames of an encoded event with ``offset`` as its last argument."""

    def decode(self, frame: Frame, *, max_attachments: int) -> Packet | PartialPacket:
        """The packet a client's frame holds (a PartialPacket while attachments must follow);
        ProtocolError for anything else."""


@functools.lru_cache(maxsize=8)
def parser_named(name: str) -> Parser:
    """The parser ``"default"``, ``"msgpack"``, or the module at a dotted path, names."""
    return cast(Parser, import_module(BUILT_IN.get(name, name)))
