"""What validation says about a record: problems with a path a person can find in the data."""

from __future__ import annotations

from typing import Any

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


_encode = msgspec.json.encode


def show(value: Any) -> str:
    """A value as it looks in the JSON input, cut to 60 characters: ``"12.50"``, ``5.0``;
    ``NaN``, ``Infinity`` and ``-Infinity`` for the floats JSON has no form for."""
    if value.__class__ is float and value - value != 0.0:
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    try:
        text = _encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def join(path: str, key: str) -> str:
    """``join("customer", "email") == "customer.email"``; ``join("", "id") == "id"``."""
    return f"{path}.{key}" if path else key
