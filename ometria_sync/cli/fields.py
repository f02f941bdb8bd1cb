"""``ometria-sync fields``: every field of a record type, with its type, rule and an example.

Printed from the schemas (``schemas.field_guide``), so it says what the validator applies."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import msgspec

from ometria_sync.cli.common import SubParsers, render_table
from ometria_sync.errors import ExitCode
from ometria_sync.schemas import RECORD_TYPES, FieldDoc, Need, field_guide, record_needs


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    fields = sub.add_parser(
        "fields", parents=[common],
        help="list every field of a record type: its type, its rule and an example",
        description="Every field a record of the type may carry, as a mapping names it "
                    "(customer.email, lineitems[].sku), with its JSON type, the rule "
                    "validation applies and a value that passes it; then what a record needs "
                    "as a whole. Read from the schemas the validator uses.")
    fields.add_argument("record_type", nargs="?", choices=RECORD_TYPES, metavar="TYPE",
                        help=f"one of {', '.join(RECORD_TYPES)} (default: all four)")
    fields.add_argument("--json", action="store_true",
                        help="print JSON: {type: {fields: [...], needs: [...]}} (default: tables)")
    fields.set_defaults(func=cmd_fields)


def cmd_fields(args: argparse.Namespace) -> int:
    types = [args.record_type] if args.record_type else list(RECORD_TYPES)
    if args.json:
        out = {t: {"fields": field_guide(t), "needs": record_needs(t)} for t in types}
        print(msgspec.json.encode(out).decode())
        return ExitCode.OK
    for index, record_type in enumerate(types):
        if index:
            print()
        print_fields(record_type, field_guide(record_type), record_needs(record_type), sys.stdout)
    return ExitCode.OK


def print_fields(record_type: str, docs: list[FieldDoc], needs: list[Need], out: TextIO) -> None:
    """One record type: a table of its fields, then what a record needs as a whole."""
    print(f"{record_type}", file=out)
    rows = [[d.path, d.type + (" (required)" if d.required else ""), _rule(d), _example(d)]
            for d in docs]
    table = render_table(rows, ["field", "type", "rule", "example"])
    print("\n".join(line.rstrip() for line in table.splitlines()), file=out)
    if needs:
        print(f"\n{record_type}: what a record needs as a whole", file=out)
        for need in needs:
            where = f"{need.path}: " if need.path else ""
            when = "always" if len(need.modes) > 1 else f'mode = "{need.modes[0]}"'
            print(f"  {where}{need.says} [{need.severity}, {when}]", file=out)
    print("\nEvery optional field may be null (Ometria deletes the stored value); a field left "
          "out keeps it. Unknown fields are sent as they are, with a warning.", file=out)


def _rule(doc: FieldDoc) -> str:
    if not doc.rule:
        return "-"
    return doc.rule + (" (warning only)" if doc.severity == "warning" else "")


def _example(doc: FieldDoc) -> str:
    value: Any = doc.example
    if value is None:
        return "-"
    return msgspec.json.encode(value).decode()
