"""Settings of the Django project the worker runs (database and paths from the environment:
``DJT_DB`` an SQLite file, or ``DJT_PG_NAME`` a PostgreSQL database on 127.0.0.1)."""
import os

SECRET_KEY = "not-a-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes"]
if os.environ.get("DJT_PG_NAME"):
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.postgresql", "NAME": os.environ["DJT_PG_NAME"],
                    "HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres"},
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3",
                    "NAME": os.environ.get("DJT_DB", ":memory:")},
    }
TASKS = {
    "default": {
        "BACKEND": "multiq.contrib.django.tasks.MultiQBackend",
        "QUEUES": ["default", "high"],
        "OPTIONS": {"APP": "djt_app:app"},
    },
}
