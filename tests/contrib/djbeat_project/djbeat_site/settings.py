"""Settings of the test project: the database and Redis come from the environment.

``DJBEAT_DB_ENGINE`` (``sqlite3`` or ``postgresql``) and ``DJBEAT_DB_NAME`` choose the
database; ``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND`` the Redis; ``DJBEAT_SCHEDULER``,
when set, becomes ``MULTIQ_BEAT_SCHEDULER``.
"""
import os

SECRET_KEY = "test-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "localhost"]
ROOT_URLCONF = "djbeat_site.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.sessions",
    "multiq.contrib.django.beat",
    "beatdemo",
]
STATIC_URL = "/static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
_ENGINE = os.environ.get("DJBEAT_DB_ENGINE", "sqlite3")
DATABASES = {
    "default": {
        "ENGINE": f"django.db.backends.{_ENGINE}",
        "NAME": os.environ.get("DJBEAT_DB_NAME", "djbeat.sqlite3"),
    },
}
if _ENGINE == "sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 30}
else:
    DATABASES["default"].update(HOST="127.0.0.1", PORT="5432",
                                USER=os.environ.get("DJBEAT_DB_USER", "postgres"))

MULTIQ_BROKER_URL = os.environ.get("MULTIQ_BROKER_URL")
MULTIQ_RESULT_BACKEND = os.environ.get("MULTIQ_RESULT_BACKEND")
MULTIQ_TIMEZONE = "UTC"
if os.environ.get("DJBEAT_SCHEDULER"):
    MULTIQ_BEAT_SCHEDULER = os.environ["DJBEAT_SCHEDULER"]
