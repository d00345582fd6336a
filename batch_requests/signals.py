"""Signals sent around each batch that passed validation.

``batch_started(sender=None, request, subrequests)``: before the first item runs.
``batch_finished(sender=None, request, results, duration)``: after the last one, with the
``SubResult`` list (status codes, durations) and the batch's wall time in seconds.
"""

from __future__ import annotations

from django.dispatch import Signal

batch_started = Signal()
batch_finished = Signal()
