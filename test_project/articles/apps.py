"""App config, kept explicit so the label stays ``articles`` whatever the path."""

from __future__ import annotations

from django.apps import AppConfig


class ArticlesConfig(AppConfig):
    """Registers the demo app under the short label ``articles``."""

    name = "test_project.articles"
    label = "articles"
    verbose_name = "Demo articles"
    default_auto_field = "django.db.models.BigAutoField"
