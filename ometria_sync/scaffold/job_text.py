"""The text of a first job file for one CSV export: the settings of ``config/example.toml``,
one stream, and the header's columns mapped to the fields they likely fill.

Columns with no known field are dropped (a column the mapping does not name would otherwise be
sent under its header name, as an unknown field) and listed again, commented out, where the
mapping is, so that keeping one is a matter of uncommenting a line. The text loads as it is
(``tests`` load it): TOML strings are written as JSON strings, which TOML reads the same.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import msgspec

from ometria_sync.scaffold.headers import ColumnMatch, computed_columns
from ometria_sync.schemas import RecordType

#: the stream's name for each record type (the plural people say)
STREAM_NAMES: dict[RecordType, str] = {
    "contact": "contacts", "product": "products", "order": "orders",
    "custom_event": "custom_events",
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class JobPlan(msgspec.Struct, frozen=True):
    """What the job file says: the stream, where the export is (relative to the job file's
    folder), its delimiter, and each column's match."""

    record_type: RecordType
    csv_path: str
    delimiter: str
    matches: list[ColumnMatch]
    command: str
    #: the job file's name, for the commands the text suggests
    job_file: str = "job.toml"
    #: the local emulator's base URL, written commented out under the real one
    emulator_url: str = "http://127.0.0.1:8765/v2"


def toml_key(name: str) -> str:
    """A TOML key for a column name: bare when it can be, else a quoted string."""
    return name if _BARE_KEY.fullmatch(name) else toml_string(name)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, but characters beyond the BMP kept as they are
    (JSON's surrogate pairs are not TOML escapes) and DEL escaped (TOML refuses it raw)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _column_lines(match: ColumnMatch) -> list[str]:
    """The column's line, under its notes (one comment line each)."""
    fields = match.fields
    field = toml_string(fields[0]) if len(fields) == 1 else (
        "[" + ", ".join(toml_string(f) for f in fields) + "]")
    options = [("type", toml_string(match.type))] if match.type != "string" else []
    if match.values is not None:
        options.append(("values", "{ " + ", ".join(
            f"{toml_string(k)} = {toml_value(v)}" for k, v in match.values.items()) + " }"))
    if match.expr is not None:
        options.append(("expr", toml_string(match.expr)))
    if match.on_error is not None:
        options.append(("on_error", toml_string(match.on_error)))
    if options or len(fields) > 1:
        inner = ", ".join(f"{k} = {v}" for k, v in [("field", field), *options])
        line = f"{toml_key(match.column)} = {{ {inner} }}"
    else:
        line = f"{toml_key(match.column)} = {field}"
    if match.hint:
        line = line.ljust(48) + f"  # {match.hint}"
    notes = [text for note in match.notes
             for text in textwrap.wrap(note, 96, initial_indent="# ", subsequent_indent="#   ")]
    return [*notes, line]


def toml_value(value: Any) -> str:
    """A value of a value map: TOML's true/false for booleans, else a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return toml_string(str(value))


def job_text(plan: JobPlan) -> str:
    """The job file."""
    mapped = [m for m in plan.matches if m.field is not None]
    unknown = [m for m in plan.matches if m.field is None]
    lines = [
        f"# Written by `{plan.command}`: a first job for this export.",
        "# Check each mapping below, then:",
        f"#   ometria-sync validate {plan.job_file}   # read and check every row, send nothing",
        f"#   ometria-sync fields {plan.record_type}   # every field, its rule and an example",
        "",
        "[ometria]",
        'base_url = "https://api.ometria.com/v2"   # plain http:// only for loopback hosts',
        f"# base_url = {toml_string(plan.emulator_url)}  # a local emulator: "
        "`ometria-sync emulator`",
        'api_key_env = "OMETRIA_API_KEY"           # the key itself never lives in the file',
        "rate_limit_per_second = 4                 # your plan's limit; never exceeded",
        "batch_size = 100                          # 1..100",
        "",
        "[state]",
        'checkpoint_url = "sqlite:///state/checkpoints.db"',
        'dead_letter_path = "state/dead-letter.jsonl"',
        "",
        "[run]",
        "grace_period = 10                         # seconds SIGINT/SIGTERM waits for "
        "in-flight batches",
        "",
        "[[streams]]",
        f"name = {toml_string(STREAM_NAMES[plan.record_type])}",
        f"record_type = {toml_string(plan.record_type)}",
        'mode = "update"                           # "create" also requires what Ometria '
        "needs to create",
        "",
        "[streams.source]",
        'kind = "csv"',
        f"path = {toml_string(plan.csv_path)}".ljust(42) + "  # relative to this file's folder",
        'timezone = "UTC"                          # the zone of timestamps written without '
        "an offset",
    ]
    if plan.delimiter != ",":
        lines.append(f"delimiter = {toml_string(plan.delimiter)}")
    if unknown:
        lines.append("drop = [                                  # columns with no known field: "
                     "not sent")
        lines += [f"    {toml_string(m.column)}," for m in unknown]
        lines.append("]")
    lines += ["", "[streams.source.columns]                  # column = field, or "
                  "{ field, type }"]
    lines += [line for m in mapped for line in _column_lines(m)]
    lines += [line for m in computed_columns(plan.record_type, plan.matches)
              for line in _column_lines(m)]
    if unknown:
        lines += ["# Columns with no known field (dropped above). To send one, take it out of",
                  f"# `drop` and map it: to a field (`ometria-sync fields {plan.record_type}`) "
                  "or a property:"]
        lines += [f"# {toml_key(m.column)} = {toml_string('properties.' + _property(m.column))}"
                  for m in unknown]
    return "\n".join(lines) + "\n"


def _property(column: str) -> str:
    """A property name for a column: its name in lower case, words joined by ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_") or "column"
