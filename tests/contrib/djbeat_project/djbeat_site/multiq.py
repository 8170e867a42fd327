"""The project's app, as the tutorials write ``celery.py`` (names changed)."""
import os

from multiq import MultiQ

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbeat_site.settings")

app = MultiQ("djbeat_site")
app.config_from_object("django.conf:settings", namespace="MULTIQ")
app.autodiscover_tasks()
