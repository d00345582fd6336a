from __future__ import annotations

from django.apps import AppConfig


class BatchRequestsConfig(AppConfig):
    name = "batch_requests"
    verbose_name = "Batch requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import got_request_exception

        from batch_requests import checks  # noqa: F401  (registers the system checks)
        from batch_requests.conf import connect_signals
        from batch_requests.policies import note_durable_conflict

        connect_signals()
        got_request_exception.connect(note_durable_conflict,
                                      dispatch_uid="batch_requests.durable_conflict")
