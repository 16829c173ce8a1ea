"""Model fields that take any string a client sends.

PostgreSQL refuses NUL in text (and ``\\u0000`` in jsonb), and no database
driver encodes lone surrogates; socket.io names and payloads may hold all of
them. Names are therefore stored with those characters escaped (everything
else verbatim, so the admin's search works), and JSON as ASCII-escaped text.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from django.db import models

from .conf import conf

if TYPE_CHECKING:
    _TextField = models.TextField[Any, Any]
else:
    _TextField = models.TextField

_UNSAFE = re.compile("[\\\\\x00\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|u[0-9a-f]{4})")


def escape(text: str) -> str:
    """``text`` with backslash, NUL and surrogates written as escapes."""
    return _UNSAFE.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\u{ord(m.group()):04x}", text)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`."""
    return _ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), text)


class NameField(_TextField):
    """A text column for any string: namespace and room names."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return escape(value) if isinstance(value, str) else value

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return unescape(value) if value is not None else None


def json_text(value: Any) -> str:
    """``value`` as :class:`JSONTextField` stores it: encoded by the project's ``JSON_ENCODER``, as
    it would be on the wire; TypeError or ValueError for what it cannot encode."""
    return json.dumps(value, separators=(",", ":"), cls=conf.JSON_ENCODER)


class EncodedJSON(str):
    """JSON text encoded as :class:`JSONTextField` stores it: saved as it is."""


def encoded(value: Any) -> EncodedJSON:
    """``value`` encoded once for a :class:`JSONTextField`, where the encoding can fail: in the code
    that set it, not in the write; TypeError or ValueError for what it cannot encode."""
    return EncodedJSON(json_text(value))


class JSONTextField(_TextField):
    """JSON kept as ASCII text, so any string inside it is stored; encoded as the wire encodes it
    (a ``datetime`` is stored as the string a client receives)."""

    _pyi_private_set_type: Any  # what django-stubs' mypy plugin reads as the value type
    _pyi_private_get_type: Any

    def get_prep_value(self, value: Any) -> Any:
        return value if isinstance(value, EncodedJSON) else json_text(value)

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return json.loads(value) if value is not None else None

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value
