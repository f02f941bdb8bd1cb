"""``expr = "..."``: a small, safe expression over one column's value, for a job file.

An expression sees ``value`` (the column's typed cell) and ``row`` (the raw cells by header, or
a database row's values by column name) and a handful of helpers a shop export needs:
``e164(value, "GB")``, ``country(value)``, ``date(value, "%d/%m/%Y")``, ``lower``, ``upper``,
``strip`` (and ``str``, ``int``, ``float``, ``round``, ``abs``). It is evaluated by simpleeval
(no imports, no assignments, no names but these); attribute access is limited to strings' own
methods (``value.title()``), checked once when the expression is compiled and again when it
runs. A job file's text is never Python code.

Compiled once per mapping: a syntax error, an unknown name or a method strings lack is a
:class:`~ometria_sync.errors.ConfigError` naming the key. At run time an expression that raises
is an :class:`ExpressionError` naming the expression, which refuses the record (or leaves the
field out, with ``on_error = "omit"``).
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import phonenumbers
import pycountry
import simpleeval

from ometria_sync.errors import ConfigError


class ExpressionError(ValueError):
    """An expression that raised for one row's value."""


def e164(value: Any, region: str = "GB") -> str:
    """A phone number in E.164 (``+447700900123``); a national number is read in ``region``."""
    text = str(value)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a phone number: {text!r}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a possible {region} phone number: {text!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


#: names people write for a country that ISO 3166 does not (or spells otherwise)
_ALIASES = {
    "uk": "GB", "u.k.": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "great britain": "GB", "britain": "GB",
    "usa": "US", "u.s.a.": "US", "u.s.": "US", "america": "US", "united states of america": "US",
    "holland": "NL", "the netherlands": "NL", "russia": "RU", "south korea": "KR",
    "korea": "KR", "north korea": "KP", "vietnam": "VN", "iran": "IR", "syria": "SY",
    "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "laos": "LA", "moldova": "MD",
    "czech republic": "CZ", "ivory coast": "CI", "macedonia": "MK", "taiwan": "TW",
    "turkey": "TR", "eire": "IE",
}


@lru_cache(maxsize=1024)
def country(value: Any) -> str:
    """An ISO 3166-1 alpha-2 code from a code (``gb``, ``GBR``), a name (``Germany``,
    ``United Kingdom``) or a common alias (``UK`` -> ``GB``, ``England`` -> ``GB``)."""
    text = str(value).strip()
    alias = _ALIASES.get(text.lower())
    if alias is not None:
        return alias
    try:
        found = pycountry.countries.lookup(text)
    except LookupError:
        raise ValueError(f"not a country name or code: {text!r}") from None
    return str(found.alpha_2)


def date(value: Any, pattern: str = "%d/%m/%Y") -> str:
    """A date written as ``pattern`` (strptime's codes) as ``YYYY-MM-DD``."""
    text = str(value).strip()
    try:
        return dt.datetime.strptime(text, pattern).date().isoformat()
    except ValueError:
        raise ValueError(f"not a date in the form {pattern!r}: {text!r}") from None


def _text(function: Callable[[str], str]) -> Callable[[Any], str]:
    return lambda value: function(str(value))


HELPERS: dict[str, Callable[..., Any]] = {
    "e164": e164, "country": country, "date": date, "lower": _text(str.lower),
    "upper": _text(str.upper), "strip": _text(str.strip), "str": str, "int": int,
    "float": float, "round": round, "abs": abs,
}
#: the string methods an expression may call (``format`` reaches attributes: not allowed)
STRING_METHODS = frozenset(n for n in dir(str) if not n.startswith("_")) - {"format",
                                                                           "format_map"}
_NAMES = frozenset(("value", "row", "True", "False", "None"))


class _Evaluator(simpleeval.SimpleEval):  # type: ignore[misc]
    """simpleeval with attribute access narrowed to strings' own methods."""

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        target = self._eval(node.value)
        if not isinstance(target, str) or node.attr not in STRING_METHODS:
            raise simpleeval.FeatureNotAvailable(
                f"only strings' own methods may be used, not .{node.attr} on "
                f"{type(target).__name__}")
        return getattr(target, node.attr)


class Expression:
    """One compiled ``expr``: call it with the column's value and the row."""

    def __init__(self, key: str, source: str, header: Sequence[str] | None = None) -> None:
        self.source = source
        self._tree = _parse(key, source)
        _check(key, self._tree, header)
        names = {n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name)}
        self.uses_row, self.uses_value = "row" in names, "value" in names
        self._evaluator = _Evaluator(functions=HELPERS, names={})

    def __call__(self, value: Any, row: Mapping[str, Any] | None) -> Any:
        evaluator = self._evaluator
        evaluator.names = {"value": value, "row": row or {}, "True": True, "False": False,
                           "None": None}
        try:
            return evaluator.eval(self.source, previously_parsed=self._tree)
        except KeyError as exc:
            raise ExpressionError(f"expr {self.source!r}: the row has no column {exc}") from None
        except Exception as exc:  # an expression can raise anything; it refuses one record
            raise ExpressionError(f"expr {self.source!r} failed for {value!r}: "
                                  f"{_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text if isinstance(exc, (ValueError, simpleeval.InvalidExpression)) and text else (
        f"{type(exc).__name__}: {text}")


@lru_cache(maxsize=256)
def _parsed(source: str) -> ast.Expression:
    return ast.parse(source.strip(), mode="eval")


def _parse(key: str, source: str) -> ast.AST:
    if not source.strip():
        raise ConfigError(key, "is empty (write an expression over value and row)")
    try:
        return _parsed(source).body
    except SyntaxError as exc:
        raise ConfigError(key, f"not an expression: {source!r} ({exc.msg})") from None


def _check(key: str, tree: ast.AST, header: Sequence[str] | None) -> None:
    """Names, methods and row keys an expression may use, before any row is read."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in _NAMES and node.id not in HELPERS:
            raise ConfigError(key, f"unknown name {node.id!r} (use value, row or one of "
                                   f"{', '.join(sorted(HELPERS))})")
        if isinstance(node, ast.Attribute) and node.attr not in STRING_METHODS:
            raise ConfigError(key, f".{node.attr}: only strings' own methods may be used "
                                   "(value.title(), value.replace('a', 'b'))")
        if isinstance(node, (ast.Lambda, ast.NamedExpr, ast.Starred)):
            raise ConfigError(key, f"{type(node).__name__.lower()} is not allowed here")
        if (header is not None and isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name) and node.value.id == "row"
                and isinstance(node.slice, ast.Constant) and node.slice.value not in header):
            raise ConfigError(key, f"row[{node.slice.value!r}]: not in the header (the header "
                                   f"has: {', '.join(header)})")
