"""``br_settings``: the 2015 app's settings object, kept for code written against it.

``from batch_requests.settings import br_settings`` works as it did: its attributes are the
``BATCH_REQUESTS`` keys (``MAX_LIMIT``, ``DURATION_HEADER_NAME``, ...), read live through
``batch_requests.conf.batch_settings`` (so ``override_settings`` applies), and ``executor``
is the executor the batch view uses. Assigning one (``br_settings.executor =
ThreadBasedExecutor(10)``) makes the view run batches on it; assigning back what was read
before returns to the executor the settings select. The keys themselves are changed in
``settings.BATCH_REQUESTS``, not here.

Importing this module imports nothing of Django beyond what ``batch_requests.conf`` does
(the lazy ``django.conf.settings``); the executors are imported when ``executor`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batch_requests.conf import DEFAULTS, batch_settings, user_settings

if TYPE_CHECKING:
    from batch_requests.concurrent.base import BaseExecutor


class BatchRequestSettings:
    """The 2015 ``BatchRequestSettings``: the ``BATCH_REQUESTS`` keys as attributes."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid API setting: {name!r}")  # the 2015 message
        return getattr(batch_settings, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "executor":
            raise AttributeError(f"br_settings.{name} is read from settings.BATCH_REQUESTS; "
                                 "change it there (override_settings in tests).")
        super().__setattr__(name, value)

    @property
    def executor(self) -> BaseExecutor:
        """The executor the batch view runs batches on."""
        from batch_requests.concurrent.executor import get_executor

        return get_executor()

    @executor.setter
    def executor(self, executor: BaseExecutor | None) -> None:
        from batch_requests.concurrent.executor import assign_executor

        assign_executor(executor)

    @executor.deleter
    def executor(self) -> None:
        from batch_requests.concurrent.executor import assign_executor

        assign_executor(None)

    @property
    def user_settings(self) -> dict[str, Any]:
        """``settings.BATCH_REQUESTS`` as it is now."""
        return user_settings()

    @property
    def defaults(self) -> dict[str, Any]:
        """The default of every key (``NUM_WORKERS``: None, meaning CPUs * 4)."""
        return dict(DEFAULTS)


br_settings = BatchRequestSettings()
