"""Imported by a test's worker (``-I probe``): its main process uses the database, as a
start-up hook or a scheduler in it would, and records the session it used at start
(before the pool forks) and at shutdown in the JSON-lines file ``$DJP_PROBE_FILE``."""
import json
import os

from app01.tasks import session_id
from django.db import connection

from multiq.signals import worker_init, worker_shutdown


def _record(event):
    try:
        value = session_id() if connection.vendor == "postgresql" else _count()
    except Exception as exc:
        value = f"{type(exc).__name__}: {exc}"
    with open(os.environ["DJP_PROBE_FILE"], "a") as fh:
        fh.write(json.dumps({"event": event, "pid": os.getpid(), "value": value}) + "\n")


def _count():
    from app01.models import Note

    return Note.objects.count()


@worker_init.connect
def _at_start(sender=None, **kwargs):
    _record("start")


@worker_shutdown.connect
def _at_shutdown(sender=None, **kwargs):
    _record("shutdown")
