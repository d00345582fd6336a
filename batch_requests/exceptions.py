"""The one error type of the request-checking stages; the view turns it into a 4xx JSON body."""

from __future__ import annotations

from dataclasses import dataclass

#: An error body lists at most this many problems; ``"more_errors"`` counts the rest.
MAX_ERRORS_SHOWN = 20
#: Backstops: characters of one problem's message and field in an error body.
MAX_MESSAGE_LENGTH = 500
MAX_FIELD_LENGTH = 120


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch: which item (None for the batch itself), which field, why."""

    message: str
    index: int | None = None
    field: str | None = None


class BatchError(Exception):
    def __init__(self, problems: list[Problem], status: int = 400, *,
                 legacy: bool = False) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems
        self.status = status
        #: Whether the batch is in the 2015 format (a bare list), whose errors are answered
        #: as plain text (``batch_requests.legacy.error_response``).
        self.legacy = legacy

    @classmethod
    def single(cls, message: str, *, index: int | None = None, field: str | None = None,
               status: int = 400, legacy: bool = False) -> BatchError:
        return cls([Problem(message, index, field)], status, legacy=legacy)

    def as_json(self) -> dict:
        """The error body: ``{"errors": [{message, index, field}, ...]}``, bounded in size.

        At most ``MAX_ERRORS_SHOWN`` problems are listed; when there are more, the body also
        holds ``"more_errors": <how many were left out>``. Over-long messages and fields are
        cut (ending in "...").
        """
        shown = self.problems[:MAX_ERRORS_SHOWN]
        body: dict = {"errors": [
            {"message": _cut(p.message, MAX_MESSAGE_LENGTH), "index": p.index,
             "field": None if p.field is None else _cut(p.field, MAX_FIELD_LENGTH)}
            for p in shown]}
        if len(self.problems) > len(shown):
            body["more_errors"] = len(self.problems) - len(shown)
        return body


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
