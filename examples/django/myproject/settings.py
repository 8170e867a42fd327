"""Settings of the example project (``django-admin startproject``, trimmed)."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "change-me: only for the example")
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "myapp",
    # the periodic-task models: schedules kept in the database, edited in the admin
    "multiq.contrib.django.beat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "myproject.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"

# multiq: every name starts with MULTIQ_ (config_from_object(..., namespace="MULTIQ"))
MULTIQ_BROKER_URL = os.environ.get("MULTIQ_BROKER_URL", "redis://127.0.0.1:6379/1")
MULTIQ_RESULT_BACKEND = os.environ.get("MULTIQ_RESULT_BACKEND", "redis://127.0.0.1:6379/2")
MULTIQ_TIMEZONE = TIME_ZONE
MULTIQ_ACCEPT_CONTENT = ["json"]
MULTIQ_TASK_SERIALIZER = "json"
MULTIQ_RESULT_SERIALIZER = "json"
MULTIQ_TASK_TIME_LIMIT = 10
MULTIQ_RESULT_EXPIRES = 60 * 60
MULTIQ_WORKER_MAX_TASKS_PER_CHILD = 100
# periodic tasks kept in the database (multiq.contrib.django.beat, installed above)
MULTIQ_BEAT_SCHEDULER = "multiq.contrib.django.beat.schedulers:DatabaseScheduler"
