"""sioless: socket.io for Django, on Django Channels.

Register handlers on :data:`sio` in a ``sockets.py`` module of an installed app::

    from sioless import sio, ConnectionRefused

    @sio.event
    async def connect(socket, auth):
        if not socket.user.is_authenticated:
            raise ConnectionRefused("login required")

    @sio.event
    def say(socket, text):
        sio.emit("said", text, skip=socket)
        return "stored"
"""

from importlib.metadata import PackageNotFoundError, version

from .exceptions import AckTimeout, ConnectionRefused, PayloadError, ProtocolError, SiolessError, SocketGone
from .namespaces import Namespace
from .reasons import DisconnectReason
from .records import Handshake
from .remote import RemoteSocket
from .server import Server, sio
from .socket import Ack, Socket

try:  # the installed distribution's: setup.cfg has the one source of it
    __version__ = version("sioless")
except PackageNotFoundError:  # imported from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Ack",
    "AckTimeout",
    "ConnectionRefused",
    "DisconnectReason",
    "Handshake",
    "Namespace",
    "PayloadError",
    "ProtocolError",
    "RemoteSocket",
    "Server",
    "SiolessError",
    "Socket",
    "SocketGone",
    "sio",
]
