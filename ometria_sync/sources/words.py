"""Words every source reads the same way."""

from __future__ import annotations

_TRUE = frozenset(("true", "t", "yes", "y", "1"))
_FALSE = frozenset(("false", "f", "no", "n", "0"))


def boolean_word(text: str) -> bool | None:
    """The truth value ``text`` names (true/false, t/f, yes/no, y/n, 1/0; any case, spaces
    around), or None when it names none."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None
