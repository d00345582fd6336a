"""test_project's settings with the predict demo routed, whatever test_project/urls.py holds."""

from __future__ import annotations

from test_project.settings import *  # noqa: F403

ROOT_URLCONF = "predict_server_urls"
