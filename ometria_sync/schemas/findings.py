"""What checking one record finds: errors (the record is refused) and warnings (it is sent)."""

from __future__ import annotations

from typing import Any, Literal

from ometria_sync.schemas.problems import Problem, join

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
        if all(raw.get(k) is None for k in keys):
            if len(keys) == 1:
                problem = Problem(join(path, keys[0]), f"is required {why}")
            else:
                problem = Problem(path, f"needs one of {', '.join(keys)} {why}")
            (self.warnings if warn else self.errors).append(problem)
