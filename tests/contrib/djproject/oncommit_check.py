"""Sends with delay_on_commit / apply_async_on_commit in and out of transactions and prints,
as JSON, how many messages Redis held at each step."""
import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
django.setup()

from app01.models import Note  # noqa: E402
from app01.tasks import add  # noqa: E402
from django.db import transaction  # noqa: E402
from myproject.multiq import app  # noqa: E402

from multiq.contrib.django.task import DjangoTask  # noqa: E402


class Rollback(Exception):
    pass


def queued(queue="multiq"):
    return app.broker.queue_length(queue)


steps = {"django_task": isinstance(app.tasks["app01.tasks.add"], DjangoTask)}
try:
    with transaction.atomic():
        Note.objects.create(text="rolled back", pid=os.getpid())
        steps["rollback_returns"] = add.delay_on_commit(1, 1)
        steps["rollback_inside"] = queued()
        raise Rollback
except Rollback:
    pass
steps["rollback_after"] = queued()

with transaction.atomic():
    Note.objects.create(text="committed", pid=os.getpid())
    add.delay_on_commit(2, 2)
    steps["apply_async_returns"] = add.apply_async_on_commit((5, 5), queue="other")
    steps["commit_inside"] = queued() + queued("other")
steps["commit_after"] = queued()
steps["commit_after_other"] = queued("other")

steps["outside_returns"] = add.delay_on_commit(3, 3)
steps["outside_after"] = queued()
print(json.dumps(steps))
