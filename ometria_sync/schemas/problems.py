"""What validation says about a record: problems with a path a person can find in the data."""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, frozen=True, gc=False):
    """One thing wrong with a record: ``lineitems[2].discount: must be <= 0, got 5.0``.

    ``path`` uses dots and ``[i]`` from the record's root ('' for the record as a whole).
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Verdict(msgspec.Struct, gc=False):
    """Validation result. ``errors`` make the record invalid (dead letter); ``warnings`` do
    not (unknown fields, unsure rules) and are counted in the run summary."""

    errors: list[Problem] = msgspec.field(default_factory=list)
    warnings: list[Problem] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors
