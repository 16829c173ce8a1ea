"""The Django app: finds the project's handlers when Django starts."""

from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class SiolessConfig(AppConfig):
    name = "sioless"
    verbose_name = "Socket.IO"

    def ready(self) -> None:
        """Import every installed app's ``sockets`` module and ``HANDLER_MODULES``."""
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import conf

        autodiscover_modules("sockets")
        for module in conf.HANDLER_MODULES:
            import_module(module)
