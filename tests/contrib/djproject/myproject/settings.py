"""Settings of the test project; the database and the Redis URLs come from the test."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "only-for-the-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "app01.apps.App01Config",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "myproject.urls"


def _database():
    max_age = os.environ.get("DJP_CONN_MAX_AGE", "0")
    common = {
        "NAME": os.environ["DJP_DB_NAME"],
        "CONN_MAX_AGE": None if max_age == "none" else int(max_age),
        "CONN_HEALTH_CHECKS": os.environ.get("DJP_HEALTH_CHECKS") == "1",
    }
    if os.environ.get("DJP_DB_ENGINE") == "postgresql":
        return {"ENGINE": "django.db.backends.postgresql", "USER": "postgres",
                "HOST": "127.0.0.1", "PORT": "5432", **common}
    return {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 30}, **common}


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TIME_ZONE = "UTC"
USE_TZ = True

# multiq: names start with MULTIQ_
MULTIQ_BROKER_URL = os.environ["DJP_BROKER_URL"]
MULTIQ_RESULT_BACKEND = os.environ["DJP_RESULT_BACKEND"]
MULTIQ_TIMEZONE = TIME_ZONE
MULTIQ_ACCEPT_CONTENT = ["json"]
MULTIQ_TASK_SERIALIZER = "json"
MULTIQ_RESULT_SERIALIZER = "json"
MULTIQ_RESULT_EXPIRES = 60 * 60
if os.environ.get("DJP_BEAT") == "1":
    MULTIQ_BEAT_SCHEDULE = {
        "note-every-second": {"task": "app01.tasks.write_note", "schedule": 1.0,
                              "args": ("from beat",)},
    }
