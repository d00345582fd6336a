"""The one error type of the request-checking stages; the view turns it into a 4xx JSON body."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch: which item (None for the batch itself), which field, why."""

    message: str
    index: int | None = None
    field: str | None = None


class BatchError(Exception):
    def __init__(self, problems: list[Problem], status: int = 400) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems
        self.status = status

    @classmethod
    def single(cls, message: str, *, index: int | None = None, field: str | None = None,
               status: int = 400) -> BatchError:
        return cls([Problem(message, index, field)], status)

    def as_json(self) -> dict:
        return {"errors": [asdict(p) for p in self.problems]}
