"""The typed lane: a whole chunk of JSON lines checked and encoded a column at a time.

Per record, a first run decodes a line into a dict, runs the clean check on it, encodes it
(sorted keys) and hashes it: most of that is Python work per value. :class:`TypedLane` does
the common case of a clean chunk with few Python steps per record: one ``decode_lines`` call
into strict twins of the record Structs (unknown fields forbidden at every level, exact JSON
types, ``int | float`` for numbers so that integers stay integers, code lists as ``Literal``,
``@type`` fixed to the stream's type and set when missing), then each value rule over a column
(one regular expression over the column's values joined by ``"\\n"``, sets for code lists,
``min``/``max`` for signs, ``fromisoformat`` over date columns), the object rules once per
distinct pattern of which fields hold a value, and one encoding per record.

Everything is derived from :mod:`ometria_sync.schemas.records` (the twins) and
:mod:`ometria_sync.schemas.rules` (``FIELD_RULES``, ``OBJECT_RULES``): a field rule is taken
through its code list (``accepts``: a set), its sign, or the columnar form of its text check
(:data:`_TEXT_FORMS`); an object rule through the fields it reads (:data:`_OBJECT_READS`: the
rule itself is run on each distinct pattern). A rule with neither makes the type's lane say
no (:func:`typed_lane` is None), so a new rule never slips past it.

Guarantee (the property tests hold it to this): :meth:`TypedLane.accept` returns encodings
only when every line decodes (as a dict) to a record that ``clean_check`` passes (no error, no
warning from the walk) and that encodes within ``MAX_RECORD_BYTES``, and each is, byte for
byte, the dict's canonical encoding with ``@type`` added as ``prepare_record`` adds it.
Whenever unsure (an escape ``\\u``, a ``"null"`` text anywhere, a value the twin refuses) it
says None, and the caller takes the usual path, which gives every message.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections import deque
from collections.abc import Callable
from datetime import date, datetime
from itertools import chain
from operator import attrgetter, not_
from typing import Any, Literal

import msgspec

from ometria_sync.schemas import rules as r
from ometria_sync.schemas.envelope import MAX_RECORD_BYTES
from ometria_sync.schemas.problems import Findings, Mode
from ometria_sync.schemas.records import RECORD_STRUCTS

#: a check of the distinct non-null values of a column of strings
Column = Callable[[set[str]], bool]

#: the ``"null"`` texts (``check.NULL_TEXTS``) as they appear in a line's bytes unless spelt
#: with a ``\\u`` escape: a chunk holding either takes the usual path
_NULL = b'"null"'  # looked for in the lowered bytes
_MISSING = frozenset((None, msgspec.UNSET))


def _pattern(pattern: re.Pattern[str], *, longest: int = 0,
             parse: Callable[[str], object] | None = None) -> Column:
    """Every value fullmatches ``pattern`` (which never matches a ``"\\n"``: the values are
    joined by one, and a value holding one is refused), is at most ``longest`` characters
    (0: any) and ``parse`` takes it."""
    body = pattern.pattern
    joined = re.compile(f"(?:{body})(?:\n(?:{body}))*", pattern.flags)

    def check(values: set[str]) -> bool:
        text = "\n".join(values)
        if text.count("\n") != len(values) - 1 or joined.fullmatch(text) is None:
            return False
        if longest and max(map(len, values)) > longest:
            return False
        if parse is not None:
            try:
                deque(map(parse, values), maxlen=0)
            except ValueError:
                return False
        return True

    return check


#: the columnar form of each text check of ``rules``: true only of values it finds nothing in
_TEXT_FORMS: dict[Callable[[str], str | None], Column] = {
    r.id_problem: _pattern(r._NO_SPACE),
    r.email_problem: _pattern(r._EMAIL, longest=254),
    # the pattern asks for an offset, so a parsed value is aware, with "-" "-" "T" in place
    r.timestamp_problem: _pattern(r._TIMESTAMP, parse=datetime.fromisoformat),
    r.date_problem: _pattern(r._DATE, parse=date.fromisoformat),
    r.phone_problem: _pattern(r._E164),
    r._collection: r.SMS_COLLECTIONS.isdisjoint,
}
#: the envelope's id (``clean._id``): a non-empty string without space
_ENVELOPE_ID = _TEXT_FORMS[r.id_problem]

#: the fields each object rule reads, and only whether each holds a value (not missing, not
#: null): the rule is run on one stand-in object per distinct pattern of them
_OBJECT_READS: dict[Callable[..., None], tuple[str, ...]] = {
    r._contact: ("@collection", "email", "customer_id", "phone_number"),
    r._order: ("timestamp", "totals", "grand_total", "currency"),
    r._line_item: ("product_id", "sku", "quantity", "unit_price", "subtotal"),
}


class _No(Exception):
    """A shape or rule with no columnar form: the type has no lane."""


class _Level:
    """The twin of one Struct and the checks of a column of its objects."""

    def __init__(self, struct: type[msgspec.Struct], mode: Mode, record_type: str | None,
                 cache: dict[type[msgspec.Struct], _Level]) -> None:
        cache[struct] = self
        self.strings: list[tuple[str, Column]] = []
        self.signs: list[tuple[str, int]] = []
        self.children: list[tuple[str, _Level, bool]] = []  # (field, level, a list of them)
        self.objects: set[str] = set()  # fields holding an object or a list (not hashable)
        fields: list[tuple[str, Any, Any]] = []
        rules = r.FIELD_RULES.get(struct, {})
        for info in msgspec.structs.fields(struct):
            name = info.encode_name
            rule = rules.get(name)
            if record_type is not None and name == "@type":
                kind: Any = Literal[record_type]
                fields.append((info.name, kind, msgspec.field(name=name, default=record_type)))
                continue
            kind = self._twin(info.type, rule, name, mode, cache)
            if record_type is not None and name == "id":
                self.strings.append((name, _ENVELOPE_ID))
            default = msgspec.NODEFAULT if info.required else info.default
            fields.append((info.name, kind, msgspec.field(name=name, default=default)))
        self.twin: type[msgspec.Struct] = msgspec.defstruct(
            f"{struct.__name__}Twin", fields, forbid_unknown_fields=True, gc=False)
        rule_of_object = r.OBJECT_RULES.get(struct)
        self.reads: tuple[str, ...] = ()
        self.rule: Callable[..., None] | None = None
        self.mode = mode
        if rule_of_object is not None:
            if rule_of_object not in _OBJECT_READS:
                raise _No(f"{struct.__name__}: object rule without a columnar form")
            self.rule, self.reads = rule_of_object, _OBJECT_READS[rule_of_object]
        names = [n for n, _ in self.strings] + [n for n, _ in self.signs] + [
            n for n, _, _ in self.children] + list(self.reads)
        self.names = list(dict.fromkeys(names))
        by_encode = {i.encode_name: i.name for i in msgspec.structs.fields(struct)}
        attrs = [by_encode[n] for n in self.names]
        self.get: Callable[[Any], Any] | None = attrgetter(*attrs) if attrs else None
        self.index = {n: i for i, n in enumerate(self.names)}

    def _twin(self, annotation: Any, rule: r.Rule | None, name: str, mode: Mode,
              cache: dict[type[msgspec.Struct], _Level]) -> Any:
        """The twin annotation of a field (``rule``: its own), noting its column checks."""
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            parts = list(typing.get_args(annotation))
        else:
            parts = [annotation]
        out: list[Any] = []
        for part in parts:
            if part is type(None) or part is msgspec.UnsetType or part is bool or part is int:
                out.append(part)
            elif part is float:
                out.extend((int, float))
            elif part is str:
                out.append(self._text(rule, name))
            else:
                out.append(self._nested(part, name, mode, cache))
        codes = getattr(rule.accepts, "__self__", None) if rule is not None else None
        if rule is not None and rule.sign:
            if rule.text is not None or not set(out) <= {int, float, type(None),
                                                         msgspec.UnsetType}:
                raise _No(f"{name}: a sign on something else than a number")
            self.signs.append((name, rule.sign))
        elif rule is not None and rule.text is None and not isinstance(codes, frozenset):
            raise _No(f"{name}: a rule with no columnar form")
        return functools.reduce(lambda a, b: a | b, out)

    def _text(self, rule: r.Rule | None, name: str) -> Any:
        """A string's twin: its code list as a ``Literal``, else ``str`` with the columnar
        form of its text rule noted."""
        codes = getattr(rule.accepts, "__self__", None) if rule is not None else None
        if isinstance(codes, frozenset):
            return Literal[tuple(sorted(codes))]
        if rule is not None and rule.text is not None:
            form = _TEXT_FORMS.get(rule.text)
            if form is None:
                raise _No(f"{name}: text rule without a columnar form")
            self.strings.append((name, form))
        return str

    def _nested(self, part: Any, name: str, mode: Mode,
                cache: dict[type[msgspec.Struct], _Level]) -> Any:
        """The twin of an object, a list or a dict of free keys (no rule of their own)."""
        origin = typing.get_origin(part)
        self.objects.add(name)
        if isinstance(part, type) and issubclass(part, msgspec.Struct):
            level = cache.get(part) or _Level(part, mode, None, cache)
            if level.get is not None:  # else nothing to check below
                self.children.append((name, level, False))
            return level.twin
        if origin is list:
            (item,) = typing.get_args(part)
            if isinstance(item, type) and issubclass(item, msgspec.Struct):
                level = cache.get(item) or _Level(item, mode, None, cache)
                if level.get is not None:
                    self.children.append((name, level, True))
                return list[level.twin]  # type: ignore[name-defined]
            return list[self._twin(item, None, name, mode, cache)]  # type: ignore[misc]
        if origin is dict and typing.get_args(part)[0] is str:
            value = self._twin(typing.get_args(part)[1], None, name, mode, cache)
            return dict[str, value]  # type: ignore[valid-type]
        raise _No(f"{name}: no twin for {part!r}")

    def check(self, objects: list[Any]) -> bool:
        """True only when every object of this level (and below) passes its rules."""
        get = self.get
        if get is None or not objects:
            return True
        if len(self.names) == 1:
            columns: list[Any] = [list(map(get, objects))]
        else:
            columns = list(zip(*map(get, objects), strict=True))
        index = self.index
        for name, form in self.strings:
            values = set(columns[index[name]])
            values -= _MISSING
            if values and not form(values):
                return False
        for name, sign in self.signs:
            numbers = set(columns[index[name]])
            numbers -= _MISSING
            if numbers and (max(numbers) > 0 if sign < 0 else min(numbers) < 0):
                return False
        for name, level, many in self.children:
            held = list(filter(None, columns[index[name]]))  # a Struct is true, None/UNSET not
            if many:
                held = list(chain.from_iterable(held))
            if held and not level.check(held):
                return False
        return self.rule is None or self._object_rule(columns)

    def _object_rule(self, columns: list[Any]) -> bool:
        """The object rule, run once per distinct pattern of the fields it reads (a column
        where every object holds a value, the common case, adds no Python step per object)."""
        assert self.rule is not None
        index = self.index
        structs = self.objects
        gaps: list[tuple[str, list[bool]]] = []
        for name in self.reads:
            column = columns[index[name]]
            if name in structs:  # a Struct is true, None and UNSET are not
                if not all(column):
                    gaps.append((name, list(map(not_, column))))
            elif not _MISSING.isdisjoint(column):
                gaps.append((name, list(map(_MISSING.__contains__, column))))
        patterns = set(zip(*(g for _, g in gaps), strict=True)) if gaps else {()}
        for pattern in patterns:
            gone = {n for (n, _), g in zip(gaps, pattern, strict=True) if g}
            stand_in = {n: True for n in self.reads if n not in gone}
            found = Findings()
            self.rule(stand_in, "", self.mode, found)
            if found.errors or found.warnings:
                return False
        return True


class TypedLane:
    """One record type's lane in one mode (see the module's guarantee)."""

    def __init__(self, record_type: str, mode: Mode) -> None:
        self._level = _Level(RECORD_STRUCTS[record_type], mode, record_type, {})
        self._decode = msgspec.json.Decoder(self._level.twin).decode_lines
        self._encode = msgspec.json.Encoder(order="sorted").encode
        fields = {i.encode_name: i.name for i in msgspec.structs.fields(self._level.twin)}
        self._collection = (attrgetter(fields["@collection"]) if "@collection" in fields
                            else None)

    def accept(self, bodies: list[bytes]) -> list[bytes] | None:
        """The canonical encodings of the records of ``bodies`` (lines without their ending),
        or None when one of them is not certainly clean (a blank line included)."""
        taken = self.accept_keyed(bodies)
        return taken[0] if taken is not None else None

    def accept_keyed(self, bodies: list[bytes]
                     ) -> tuple[list[bytes], list[str], list[str | None]] | None:
        """:meth:`accept`, with each record's id and collection (None: none) beside."""
        data = b"\n".join(bodies)
        if b"\\" in data and b"\\u" in data:
            return None
        if _NULL in data.lower():
            return None
        try:
            records = self._decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        if len(records) != len(bodies) or not self._level.check(records):
            return None
        try:
            encoded = list(map(self._encode, records))
        except (TypeError, ValueError, OverflowError):
            return None
        if max(map(len, encoded), default=0) > MAX_RECORD_BYTES:
            return None
        ids: list[str] = list(map(_ID, records))
        if self._collection is None:
            return encoded, ids, [None] * len(records)
        collections = list(map(self._collection, records))
        if not _MISSING.isdisjoint(collections):
            collections = [None if c is msgspec.UNSET else c for c in collections]
        return encoded, ids, collections


_ID = attrgetter("id")


@functools.cache
def typed_lane(record_type: str, mode: Mode) -> TypedLane | None:
    """The lane of ``record_type`` in ``mode``; None when one of its rules has no columnar
    form (then its records always take the usual path)."""
    try:
        return TypedLane(record_type, mode)
    except _No:
        return None
