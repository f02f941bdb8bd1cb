"""What validation says about a record: problems with a path a person can find in the data.

A ``Problem`` names one thing wrong; a ``Verdict`` is the result of checking a record; while it
is checked, ``Findings`` collects its errors (the record is refused) and warnings (it is sent).
"""

from __future__ import annotations

from typing import Any, Literal

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


def show_value(value: Any) -> str:
    """A value as it looks in the JSON input, cut to 60 characters: ``"12.50"``, ``5.0``;
    ``NaN``, ``Infinity`` and ``-Infinity`` for the floats JSON has no form for."""
    if value.__class__ is float and value - value != 0.0:
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    try:
        text = _encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_path(path: str, key: str) -> str:
    """``field_path("customer", "email") == "customer.email"``; ``field_path("", "id") == "id"``."""
    return f"{path}.{key}" if path else key


#: "update" checks only the fields a record carries (Ometria merges partial records);
#: "create" also requires what a new record needs
Mode = Literal["update", "create"]


class Findings:
    """Errors and warnings of one record, appended to by the rules."""

    __slots__ = ("errors", "warnings")

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def require(self, raw: dict[str, Any], keys: tuple[str, ...], path: str, why: str,
                *, warn: bool = False) -> None:
        """At least one of ``keys`` holds a value (not missing, not null)."""
        for key in keys:
            if raw.get(key) is not None:
                return
        if len(keys) == 1:
            problem = Problem(field_path(path, keys[0]), f"is required {why}")
        else:
            problem = Problem(path, f"needs one of {', '.join(keys)} {why}")
        (self.warnings if warn else self.errors).append(problem)
