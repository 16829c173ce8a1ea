"""The Django app: finds the project's handlers when Django starts, hooks the heartbeat to django-q2,
and keeps polling sids out of runserver's request log."""

from __future__ import annotations

import logging
from importlib import import_module

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

#: The logger of daphne's runserver, which logs every request with its query string.
RUNSERVER_LOG = "django.channels.server"


class SiolessConfig(AppConfig):
    name = "sioless"
    verbose_name = "Socket.IO"

    def ready(self) -> None:
        """Import every installed app's ``sockets`` module and ``HANDLER_MODULES``."""
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import conf
        from .sids import SessionKeysOnly

        logging.getLogger(RUNSERVER_LOG).addFilter(SessionKeysOnly())
        autodiscover_modules("sockets")
        for module in conf.HANDLER_MODULES:
            import_module(module)
        if apps.is_installed("django_q"):
            from django_q.signals import post_spawn

            from .tasks import kick_heartbeat, schedule_heartbeat

            post_migrate.connect(schedule_heartbeat, sender=self)
            post_spawn.connect(kick_heartbeat, dispatch_uid="sioless.kick_heartbeat")
