"""Handler registration: namespaces, their events, and which namespace serves a name."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

Handler = Callable[..., Any]
NamespaceMatcher = str | re.Pattern[str] | Callable[[str], bool]
H = TypeVar("H", bound=Handler)

#: Events a client may not trigger: they belong to the socket's life cycle.
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect"})
#: The event name of a catch-all handler, called as ``handler(socket, event, *args)``.
CATCH_ALL = "*"


class Namespace:
    """The handlers of one namespace, or of every namespace a pattern matches.

    Register functions with :meth:`on`, or subclass and define ``on_<event>``
    methods taking ``(self, socket, *args)``.
    """

    def __init__(self, namespace: NamespaceMatcher = "/") -> None:
        if isinstance(namespace, str) and not namespace.startswith("/"):
            raise ValueError(f"namespace {namespace!r} must start with '/'")
        self.namespace = namespace
        self._handlers: dict[str, Handler] = {}
        #: Run before the ``connect`` handler, in order (see :meth:`use`).
        self.middlewares: list[Handler] = []
        #: Told of every event a socket here sends its client (see :meth:`on_any_outgoing`).
        self.outgoing_hooks: list[Handler] = []

    def on(self, event: str, handler: H | None = None) -> Any:
        """Register ``handler`` for ``event``; usable as a decorator."""

        def register(function: H) -> H:
            self._handlers[event] = function
            return function

        return register(handler) if handler is not None else register

    def use(self, middleware: H) -> H:
        """Run ``middleware(socket, auth)`` (sync or async) before the ``connect`` handler of every
        socket connecting here, after the middlewares registered before it; it refuses the
        connection by raising ConnectionRefused (or returning False). Usable as a decorator."""
        self.middlewares.append(middleware)
        return middleware

    def on_any_outgoing(self, hook: H) -> H:
        """Call ``hook(socket, event, *args)`` (sync or async, in the background) for every event a
        socket here sends its own client with ``socket.emit`` or ``socket.call``, as Node's
        ``socket.onAnyOutgoing`` (not for broadcasts, nor for acks). Usable as a decorator."""
        self.outgoing_hooks.append(hook)
        return hook

    def handler(self, event: str) -> Handler | None:
        """The handler registered for ``event``, if any."""
        handler = self._handlers.get(event)
        if handler is None and event.isidentifier():
            handler = getattr(self, f"on_{event}", None)
        return handler

    def matches(self, name: str) -> bool:
        """Whether this serves the namespace called ``name``."""
        if isinstance(self.namespace, str):
            return self.namespace == name
        if isinstance(self.namespace, re.Pattern):
            return self.namespace.fullmatch(name) is not None
        return bool(self.namespace(name))


class Instrument(Protocol):
    """The Admin UI of an instrumented server (:class:`sioless.admin_ui.AdminUI`), as the server,
    its checks and its workers see it."""

    namespace: str
    auth: dict[str, str] | bool | None
    mode: str

    async def report(self, worker: str, connections: Mapping[str, Any]) -> None:
        """Tell the Admin UI a worker's stats (its connections by Engine.IO sid), for ever."""

    def close(self) -> None:
        """Stop telling the Admin UI."""


class Registry:
    """Every namespace a server serves: exact names first, then patterns in order."""

    def __init__(self) -> None:
        self._exact: dict[str, Namespace] = {}
        self._dynamic: list[Namespace] = []
        #: The socket.io Admin UI's server side, once instrumented (``Server.instrument``).
        self.admin_ui: Instrument | None = None

    def register_namespace(self, namespace: Namespace) -> Namespace:
        """Serve ``namespace``, replacing one registered for the same name or pattern."""
        if isinstance(namespace.namespace, str):
            self._exact[namespace.namespace] = namespace
        else:
            self._dynamic = [ns for ns in self._dynamic if ns.namespace != namespace.namespace]
            self._dynamic.append(namespace)
        return namespace

    def _forget_namespace(self, namespace: str) -> None:
        """Serve ``namespace`` no longer (a CONNECT to it is refused as unknown)."""
        self._exact.pop(namespace, None)

    def of(self, namespace: NamespaceMatcher) -> Namespace:
        """The Namespace registered for a name or pattern, created when missing."""
        if isinstance(namespace, str) and namespace in self._exact:
            return self._exact[namespace]
        for candidate in self._dynamic:
            if candidate.namespace == namespace:
                return candidate
        return self.register_namespace(Namespace(namespace))

    def on(self, event: str, handler: H | None = None, *, namespace: NamespaceMatcher = "/") -> Any:
        """Register a handler for ``event`` in ``namespace``; usable as a decorator."""
        return self.of(namespace).on(event, handler)

    def event(self, handler: H | None = None, *, namespace: NamespaceMatcher = "/") -> Any:
        """Register a handler for the event its function is named after: ``@sio.event``, or
        ``@sio.event(namespace="/chat")``."""

        def register(function: H) -> H:
            return self.on(function.__name__, function, namespace=namespace)

        return register(handler) if handler is not None else register

    def use(self, middleware: H | None = None, *, namespace: NamespaceMatcher = "/") -> Any:
        """Add a connect middleware to ``namespace`` (Node's ``io.use``, ``io.of(ns).use``):
        ``@sio.use``, ``@sio.use(namespace="/admin")``, or ``sio.use(function, namespace=...)``."""

        def register(function: H) -> H:
            return self.of(namespace).use(function)

        return register(middleware) if middleware is not None else register

    def on_any_outgoing(self, hook: H | None = None, *, namespace: NamespaceMatcher = "/") -> Any:
        """Tell ``hook`` of every event a socket of ``namespace`` sends its own client (see
        :meth:`Namespace.on_any_outgoing`): ``@sio.on_any_outgoing``, or with ``namespace=...``."""

        def register(function: H) -> H:
            return self.of(namespace).on_any_outgoing(function)

        return register(hook) if hook is not None else register

    def namespace_for(self, name: str) -> Namespace | None:
        """The Namespace serving ``name``, or None when the namespace is unknown."""
        exact = self._exact.get(name)
        if exact is not None:
            return exact
        return next((ns for ns in self._dynamic if ns.matches(name)), None)
