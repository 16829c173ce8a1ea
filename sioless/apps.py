"""The Django app: finds the project's handlers when Django starts, hooks the heartbeat to django-q2,
keeps polling sids out of runserver's request log, and sets the garbage collector's thresholds."""

from __future__ import annotations

import gc
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
        """Import every installed app's ``sockets`` module and ``HANDLER_MODULES``; set
        ``GC_THRESHOLD`` (a value ``check_gc_threshold`` refuses is left to the system check)."""
        from .checks import check_gc_threshold  # also registers the system checks
        from .conf import conf
        from .sids import SessionKeysOnly

        if conf.GC_THRESHOLD is not None and not check_gc_threshold():
            gc.set_threshold(*conf.GC_THRESHOLD)
        logging.getLogger(RUNSERVER_LOG).addFilter(SessionKeysOnly())
        autodiscover_modules("sockets")
        for module in conf.HANDLER_MODULES:
            import_module(module)
        if apps.is_installed("django_q"):
            from django_q.signals import post_spawn

            from .tasks import kick_heartbeat, schedule_heartbeat

            post_migrate.connect(schedule_heartbeat, sender=self)
            post_spawn.connect(kick_heartbeat, dispatch_uid="sioless.kick_heartbeat")
