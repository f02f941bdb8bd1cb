"""The typed lane: a whole chunk of JSON lines checked and encoded a column at a time.

Per record, a first run decodes a line into a dict, runs the clean check on it, encodes it
(sorted keys) and hashes it: most of that is Python work per value. :class:`TypedLane` does
the common case of a clean chunk with few Python steps per record: one ``decode_lines`` call
into strict twins of the record Structs (unknown fields forbidden at every level, exact JSON
types, ``int | float`` for numbers so that integers stay integers, code lists as ``Literal``,
signs as bounds, ``@type`` fixed to the stream's type and set when missing, fields in sorted
order), then each text rule over a column (one regular expression, or one search, over the
column's values joined, ``fromisoformat`` over date columns), the object rules checked
against the patterns they refuse, worked out once when the lane is made, and one
``encode_lines`` call for the chunk.

Everything is derived from :mod:`ometria_sync.schemas.records` (the twins) and
:mod:`ometria_sync.schemas.rules` (``FIELD_RULES``, ``OBJECT_RULES``): a field rule is taken
through its code list (``accepts``: a set), its sign, or the columnar form of its text check
(``column_forms.TEXT_FORMS``); an object rule through the fields it reads
(:data:`_OBJECT_READS`: the rule itself is run on a stand-in for each pattern of them). A
rule with neither makes the type's lane say no (:func:`typed_lane` is None), so a new rule
never slips past it.

Guarantee (the property tests hold it to this): :meth:`TypedLane.accept` returns encodings
only when every line decodes (as a dict) to a record that ``clean_check`` passes (no error, no
warning from the walk) and that encodes within ``MAX_RECORD_BYTES``, and each is, byte for
byte, the dict's canonical encoding with ``@type`` added as ``prepare_record`` adds it.
Whenever unsure (an escape ``\\u``, a ``"null"`` text anywhere, a value the twin refuses) it
says None, and the caller takes the usual path, which gives every message.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from itertools import chain, product
from operator import attrgetter, not_
from typing import Annotated, Any, Literal

import msgspec

from ometria_sync.schemas import rules as r
from ometria_sync.schemas.column_forms import ENVELOPE_ID, TEXT_FORMS, Column, strings
from ometria_sync.schemas.envelope import MAX_RECORD_BYTES
from ometria_sync.schemas.problems import Findings, Mode
from ometria_sync.schemas.records import RECORD_STRUCTS

#: the ``"null"`` texts (``check.NULL_TEXTS``) as they appear in a line's bytes unless spelt
#: with a ``\\u`` escape: a chunk holding either takes the usual path
_NULL = b'"null"'  # looked for in the lowered bytes
_MISSING = frozenset((None, msgspec.UNSET))


#: the fields each object rule reads, and only whether each holds a value (not missing, not
#: null): the rule is run on one stand-in object per pattern of them, when the lane is made
_OBJECT_READS: dict[Callable[..., None], tuple[str, ...]] = {
    r._contact: ("@collection", "email", "customer_id", "phone_number"),
    r._order: ("timestamp", "totals", "grand_total", "currency"),
    r._line_item: ("product_id", "sku", "quantity", "unit_price", "subtotal"),
}


def _held(kind: Any) -> Any:
    """``kind`` without None and UNSET: a value must be there."""
    parts = [p for p in typing.get_args(kind) if p is not type(None) and p is not msgspec.UnsetType]
    return functools.reduce(lambda a, b: a | b, parts) if parts else kind


class _No(Exception):
    """A shape or rule with no columnar form: the type has no lane."""


class _Level:
    """The twin of one Struct and the checks of a column of its objects."""

    def __init__(self, struct: type[msgspec.Struct], mode: Mode, record_type: str | None,
                 cache: dict[type[msgspec.Struct], _Level]) -> None:
        cache[struct] = self
        self.strings: list[tuple[str, Column]] = []
        self.children: list[tuple[str, _Level, bool]] = []  # (field, level, a list of them)
        self.objects: set[str] = set()  # fields holding an object or a list (not hashable)
        self.mode = mode
        self._rule(struct)
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
                self.strings.append((name, ENVELOPE_ID))
            default = msgspec.NODEFAULT if info.required else info.default
            if name in self.needed:  # held by every clean object: the twin requires it
                kind = _held(kind)
                default = msgspec.NODEFAULT
            fields.append((info.name, kind, msgspec.field(name=name, default=default)))
        fields.sort(key=lambda f: f[2].name)  # encoded in this order: sorted, as the usual
        self.twin: type[msgspec.Struct] = msgspec.defstruct(  # path's dicts
            f"{struct.__name__}Twin", fields, forbid_unknown_fields=True, gc=False,
            kw_only=True)
        by_encode = {i.encode_name: i.name for i in msgspec.structs.fields(struct)}
        self.getters = {n: attrgetter(by_encode[n]) for n in by_encode}

    def _rule(self, struct: type[msgspec.Struct]) -> None:
        """The object rule, run now on a stand-in for each pattern of which of the fields it
        reads hold a value: ``needed``, the fields whose absence it always refuses (the twin
        requires them), ``reads`` the others and ``bad`` the patterns of them (which are
        missing) it refuses."""
        self.needed: tuple[str, ...] = ()
        self.reads: tuple[str, ...] = ()
        self.bad: list[tuple[bool, ...]] = []
        rule = r.OBJECT_RULES.get(struct)
        if rule is None:
            return
        if rule not in _OBJECT_READS:
            raise _No(f"{struct.__name__}: object rule without a columnar form")
        reads = _OBJECT_READS[rule]
        bad = self._refused(rule, reads, ())
        self.needed = tuple(n for i, n in enumerate(reads)
                            if all(p in bad for p in product((False, True), repeat=len(reads))
                                   if p[i]))
        reads = tuple(n for n in reads if n not in self.needed)
        left, ordered = self._refused(rule, reads, self.needed), list[str]()
        while len(ordered) < len(reads):  # first the fields that rule out most patterns
            at = max((i for i, n in enumerate(reads) if n not in ordered),
                     key=lambda i: sum(p[i] for p in left))
            ordered.append(reads[at])
            left = {p for p in left if not p[at]}
        self.reads = tuple(ordered)
        self.bad = sorted(self._refused(rule, self.reads, self.needed))

    def _refused(self, rule: Callable[..., None], reads: tuple[str, ...],
                 held: tuple[str, ...]) -> set[tuple[bool, ...]]:
        """The patterns of ``reads`` (True: missing) the rule finds something in, with the
        fields ``held`` holding a value."""
        bad = set()
        for missing in product((False, True), repeat=len(reads)):
            stand_in = dict.fromkeys(held, True)
            stand_in.update((n, True) for n, m in zip(reads, missing, strict=True) if not m)
            found = Findings()
            rule(stand_in, "", self.mode, found)
            if found.errors or found.warnings:
                bad.add(missing)
        return bad

    def _twin(self, annotation: Any, rule: r.Rule | None, name: str, mode: Mode,
              cache: dict[type[msgspec.Struct], _Level]) -> Any:
        """The twin annotation of a field (``rule``: its own), noting its column checks; a
        sign becomes a bound the decoder checks (``<= 0`` on numbers, ``>= 0`` on integers,
        as ``check._sign``)."""
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
            bound = msgspec.Meta(le=0) if rule.sign < 0 else msgspec.Meta(ge=0)
            out = [Annotated[p, bound] if p is int or (p is float and rule.sign < 0) else p
                   for p in out]
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
            form = TEXT_FORMS.get(rule.text)
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
            if level.checks:  # else nothing to check below
                self.children.append((name, level, False))
            return level.twin
        if origin is list:
            (item,) = typing.get_args(part)
            if isinstance(item, type) and issubclass(item, msgspec.Struct):
                level = cache.get(item) or _Level(item, mode, None, cache)
                if level.checks:
                    self.children.append((name, level, True))
                return list[level.twin]  # type: ignore[name-defined]
            return list[self._twin(item, None, name, mode, cache)]  # type: ignore[misc]
        if origin is dict and typing.get_args(part)[0] is str:
            value = self._twin(typing.get_args(part)[1], None, name, mode, cache)
            return dict[str, value]  # type: ignore[valid-type]
        raise _No(f"{name}: no twin for {part!r}")

    @property
    def checks(self) -> bool:
        """Whether there is anything to check in a column of this level's objects."""
        return bool(self.strings or self.children or self.bad)

    def check(self, objects: list[Any]) -> dict[str, list[Any]] | None:
        """The columns read (by field), or None when an object of this level (or below)
        breaks a rule."""
        columns: dict[str, list[Any]] = {}
        if not objects:
            return columns
        for name, form in self.strings:
            values = strings(self._column(columns, name, objects))
            if values and not form(values):
                return None
        for name, level, many in self.children:
            held = list(filter(None, self._column(columns, name, objects)))  # a Struct is
            if many:  # true, None and UNSET are not
                held = list(chain.from_iterable(held))
            if held and level.check(held) is None:
                return None
        if self.bad and not self._object_rule(columns, objects):
            return None
        return columns

    def _column(self, columns: dict[str, list[Any]], name: str,
                objects: list[Any]) -> list[Any]:
        column = columns.get(name)
        if column is None:
            column = columns[name] = list(map(self.getters[name], objects))
        return column

    def _missing(self, name: str, column: list[Any]) -> list[bool]:
        """Whether each value of ``column`` is missing (None, UNSET; a Struct is true)."""
        if name in self.objects:
            return list(map(not_, column))
        return list(map(_MISSING.__contains__, column))

    def _object_rule(self, columns: dict[str, list[Any]], objects: list[Any]) -> bool:
        """No object has a pattern the object rule refuses. When each bad pattern misses a
        field that every object holds, the common case, a pass over a few columns tells."""
        left = self.bad
        for index, name in enumerate(self.reads):
            column = self._column(columns, name, objects)
            if all(column) if name in self.objects else _MISSING.isdisjoint(column):
                left = [p for p in left if not p[index]]
                if not left:
                    return True
        flags = [self._missing(n, columns[n]) for n in self.reads]
        return set(zip(*flags, strict=True)).isdisjoint(self.bad)


class TypedLane:
    """One record type's lane in one mode (see the module's guarantee)."""

    def __init__(self, record_type: str, mode: Mode) -> None:
        self._level = _Level(RECORD_STRUCTS[record_type], mode, record_type, {})
        self._decode = msgspec.json.Decoder(self._level.twin).decode_lines
        # fields in the order they are defined (sorted), dicts' keys sorted
        self._encode = msgspec.json.Encoder(order="deterministic").encode_lines
        self._collections = "@collection" in self._level.getters

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
        if data.lower().rfind(_NULL) >= 0:  # ``in``, but faster on JSON (measured)
            return None
        try:
            records = self._decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        if len(records) != len(bodies):
            return None
        columns = self._level.check(records)
        if columns is None:
            return None
        try:  # a canonical encoding holds no newline (JSON escapes it in a string)
            encoded = self._encode(records).split(b"\n")
        except (TypeError, ValueError, OverflowError):
            return None
        encoded.pop()  # after the last newline
        if len(encoded) != len(records) or max(map(len, encoded), default=0) > MAX_RECORD_BYTES:
            return None
        ids: list[str] = self._level._column(columns, "id", records)
        if not self._collections:
            return encoded, ids, [None] * len(records)
        collections = self._level._column(columns, "@collection", records)
        if not _MISSING.isdisjoint(collections):
            collections = [None if c is msgspec.UNSET else c for c in collections]
        return encoded, ids, collections


@functools.cache
def typed_lane(record_type: str, mode: Mode) -> TypedLane | None:
    """The lane of ``record_type`` in ``mode``; None when one of its rules has no columnar
    form (then its records always take the usual path)."""
    try:
        return TypedLane(record_type, mode)
    except _No:
        return None
