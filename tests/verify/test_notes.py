"""What a verify leaves behind (``verify/notes.py``): ledger rows for what it found not in
Ometria, drops for what it found there, and the steps ``trace`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ometria_sync.pipeline import record_key
from ometria_sync.state import LedgerEntry
from ometria_sync.verify import notes
from ometria_sync.verify.check import Finding
from ometria_sync.verify.compare import Difference
from ometria_sync.verify.ledger import Detail, Ledger
from ometria_sync.verify.notes import VerifyLog, _chunk, _outcomes, ledger_key, read_steps
from ometria_sync.verify.select import Target


def target(rid: str, **extra: Any) -> Target:
    record = {"@type": "contact", "@collection": "shop", "id": rid, **extra}
    return Target(key=f"contact\x00shop\x00{rid}", id=rid, record=record,
                  source="data/c.csv:3", position=[30, 3])


def row(key: str, kind: str) -> LedgerEntry:
    return LedgerEntry("contacts", key, "why", 1, "r1", "t0", "r2", "t1", 1, kind, "{}")


def test_findings_become_missing_rows_and_verified_rows_leave(tmp_path: Path) -> None:
    """Missing, different and listed ids get a row holding their latest version (a refused
    row is left alone); a verified id leaves the ledger unless refused; every step is
    logged, with the run that resent a verified record."""
    rows = {("contacts", k): row(k, kind) for k, kind in [
        ("shop/c3", "unverified"), ("shop/c4", "refused"), ("shop/c5", "refused"),
        ("shop/c6", "undelivered")]}
    steps = VerifyLog(tmp_path / "verify-log.jsonl", "verify-9")
    listed = Detail([], {"error_path": "root", "error_message": "Record could not be imported"})
    chunk = [
        ("contacts", target("c1"), "missing", None),
        ("contacts", target("c2", email="a@b.co"), "different",
         Detail([Difference("firstname", "Ann", "Bob")], None)),
        ("contacts", target("c3"), "in_errors", listed),
        ("contacts", target("c4"), "missing", None),
        ("contacts", target("c5"), "verified", None),
        ("contacts", target("c6"), "verified", None),
        ("contacts", target("c7"), "verified", None),
    ]
    put, drops = _chunk(chunk, rows, steps, "t9", 5)
    steps.close()
    assert [(r.key, r.kind, r.attempts, r.first_run) for r in put] == [
        ("shop/c1", "missing", 1, "verify-9"), ("shop/c2", "missing", 1, "verify-9"),
        ("shop/c3", "missing", 2, "r1")]
    assert '"email":"a@b.co"' in (put[1].payload or "")
    assert put[1].reason == "verify verify-9: found different: firstname"
    assert put[2].reason.endswith("listed in /push/_errors: root: Record could not be imported")
    assert drops == {"contacts": ["shop/c6"]}
    logged = read_steps(tmp_path / "verify-log.jsonl")
    assert [(s.key, s.what) for s in logged] == [
        ("shop/c1", "found missing"), ("shop/c2", "found different"),
        ("shop/c3", "found listed in /push/_errors"), ("shop/c4", "found missing"),
        ("shop/c6", "verified")]
    assert (logged[-1].resent_by, logged[-1].position) == ("r2", [30, 3])


def test_no_file_no_steps_and_a_torn_line_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "verify-log.jsonl"
    assert read_steps(path) == []
    steps = VerifyLog(path, "verify-1")
    steps.add("contacts", target("c1"), "found missing")
    steps.close()
    with path.open("a") as out:
        out.write('{"time": "cut sh')
    assert [s.key for s in read_steps(path)] == ["shop/c1"]


def test_the_log_starts_afresh_past_its_size_and_trace_still_reads_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past LOG_ROTATE_BYTES the next verify moves the log aside (replacing the one before):
    the files stay bounded and the steps read back oldest first."""
    monkeypatch.setattr(notes, "LOG_ROTATE_BYTES", 300)
    path = tmp_path / "verify-log.jsonl"
    for verify in range(1, 6):
        steps = VerifyLog(path, f"verify-{verify}")
        for n in range(2):
            steps.add("contacts", target(f"c{verify}-{n}"), "found missing")
        steps.close()
    assert path.stat().st_size <= 600 and notes.rotated(path).stat().st_size <= 600
    keys = [s.key for s in read_steps(path)]
    assert keys == sorted(keys) and keys[-1] == "shop/c5-1"
    assert "shop/c1-0" not in keys  # the oldest went with the second rotation


def test_the_verified_walk_finds_the_ledger_s_ids_by_key_alone() -> None:
    """Every id not verified comes out, and of the verified ones only those the ledger holds
    (their keys derived from verify's target keys as the run derives them from records)."""
    ledger = Ledger()
    try:
        targets = [target(f"c{n}") for n in range(5)]
        ledger.add(0, "contacts", targets, selected=True)
        statuses = ["verified", "missing", "verified", "verified", "different"]
        ledger.settle(targets, [Finding("contacts", "contact", t.id, status, t.source)
                                for t, status in zip(targets, statuses, strict=True)])
        assert [ledger_key(t.key) for t in targets] == [
            record_key(t.record, None) for t in targets]
        rows = {("contacts", "shop/c3"): row("shop/c3", "undelivered")}
        found = [(t.id, status) for chunk in _outcomes(ledger, rows)
                 for _, t, status, _ in chunk]
        assert found == [("c1", "missing"), ("c4", "different"), ("c3", "verified")]
        assert [t.id for chunk in _outcomes(ledger, {}) for _, t, _, _ in chunk] == ["c1", "c4"]
    finally:
        ledger.close()
