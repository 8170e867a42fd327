import os

from django.db import connection

from multiq import shared_task

from .models import Note  # models at the top: the worker sets Django up first


@shared_task
def add(x, y):
    return x + y


@shared_task
def write_note(text):
    """Write a row; say which process and which database session wrote it."""
    note = Note.objects.create(text=text, pid=os.getpid())
    return {"id": note.id, "pid": os.getpid(), "session": session_id()}


def session_id():
    """PostgreSQL's backend pid of this process's connection (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]
