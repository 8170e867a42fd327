"""Periodic tasks kept in the database, edited in the Django admin.

Add ``"multiq.contrib.django.beat"`` to ``INSTALLED_APPS``, run ``migrate``, and start beat
with ``multiq -A proj beat -S django``. The models carry django-celery-beat's names and
fields (``PeriodicTask``, ``IntervalSchedule``, ``CrontabSchedule``, ``SolarSchedule``,
``ClockedSchedule``, ``PeriodicTasks``); ``manage.py multiq_beat_import`` copies the rows of
an existing django-celery-beat database.
"""
