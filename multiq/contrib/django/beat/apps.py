"""The Django application of database-kept periodic tasks."""
from __future__ import annotations

from django.apps import AppConfig


class BeatConfig(AppConfig):
    name = "multiq.contrib.django.beat"
    label = "multiq_beat"  # not "beat": other apps may be called that
    verbose_name = "Periodic tasks"
    default_auto_field = "django.db.models.AutoField"  # the migrations do not follow settings
