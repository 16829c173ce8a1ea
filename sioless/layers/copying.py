"""Copies of messages as a serializing layer would deliver them, without ``copy.deepcopy``'s cost."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

#: Types whose values cannot change: messages and their copies share them.
_UNCHANGEABLE = frozenset({str, bytes, int, float, bool, type(None)})


def _unchangeable(value: Any) -> bool:
    """Whether nothing in ``value`` can change: a string, bytes, a number, None, or a tuple of them."""
    kind = type(value)
    return kind in _UNCHANGEABLE or (kind is tuple and all(map(_unchangeable, value)))


def copied(value: Any) -> Any:
    """A copy of a message as a serializing layer would deliver it: its dicts, lists and tuples
    copied (nothing the sender changes later reaches the receiver), anything that cannot change
    shared, as ``copy.deepcopy`` does (which costs several times as much)."""
    kind = type(value)
    if kind is dict:
        return {key: copied(item) for key, item in value.items()}
    if kind is list:
        return [copied(item) for item in value]
    if kind is tuple and not _unchangeable(value):
        return tuple([copied(item) for item in value])
    return value


def copier(message: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """What copies ``message`` for each member of a group: ``dict.copy`` when none of its values
    can change (a broadcast's frames and groups are tuples), else :func:`copied`."""
    if all(map(_unchangeable, message.values())):
        return message.copy
    return functools.partial(copied, message)
