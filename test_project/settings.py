"""Settings of the demo project, which is also the test project."""

from __future__ import annotations

import os
import tempfile
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "batch_requests",
    "test_project.articles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The demo page's "simulated network latency" knob (X-Demo-Latency); a no-op otherwise.
    "test_project.articles.pages.SimulatedLatencyMiddleware",
]

ROOT_URLCONF = "test_project.urls"
WSGI_APPLICATION = "test_project.wsgi.application"
ASGI_APPLICATION = "test_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_NAME", str(BASE_DIR / "db.sqlite3")),
        # A file, not SQLite's in-memory default, so that the process executor's worker
        # processes reach the test database too.
        "TEST": {"NAME": os.environ.get("DJANGO_TEST_DB_NAME") or os.path.join(
            tempfile.gettempdir(), f"batch_requests_test_{os.getpid()}.sqlite3")},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "media"
LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_THROTTLE_RATES": {"burst": "5/min"},
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# The OpenAPI schema (/api/schema/), only where drf-spectacular is installed (the "schema"
# extra); the batch endpoint is added to it by batch_requests.schema.postprocess_batch_schema.
if find_spec("drf_spectacular") is not None:
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "django-batch-requests demo",
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "batch_requests.schema.postprocess_batch_schema",
        ],
    }

JSON_API_FORMAT_FIELD_NAMES = "camelize"
JSON_API_FORMAT_TYPES = "dasherize"

BATCH_REQUESTS = {
    "MAX_LIMIT": 50,
}
# The live-server tests and benchmarks pick an executor: thread, process or async.
if os.environ.get("BATCH_EXECUTOR"):
    BATCH_REQUESTS |= {
        "EXECUTE_PARALLEL": True,
        "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor."
        + {"thread": "ThreadBasedExecutor", "process": "ProcessBasedExecutor",
           "async": "AsyncExecutor"}[os.environ["BATCH_EXECUTOR"]],
    }
if os.environ.get("BATCH_NUM_WORKERS"):
    BATCH_REQUESTS["NUM_WORKERS"] = int(os.environ["BATCH_NUM_WORKERS"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": True},
    },
}
