"""Sorting looked-up records: verified, different (with the fields), missing, listed in
``/push/_errors`` (with Ometria's message), not verifiable (custom events: no read endpoint)."""

from __future__ import annotations

from typing import Any

from ometria_sync.verify.check import classify, errors_by_record
from ometria_sync.verify.compare import Difference
from ometria_sync.verify.select import Target


def _t(rid: str, **record: Any) -> Target:
    return Target(key=rid, id=rid, record={"id": rid, **record}, source=f"orders.jsonl:{rid}")


ERRORS = [{"error_message": "Record could not be imported", "error_path": "root",
           "record_id": "o3", "record_type": "order", "request_id": "r1"},
          {"error_message": "not a valid value", "error_path": "root > lastname"}]


def test_each_record_gets_one_status_with_its_source() -> None:
    targets = [_t("o1", grand_total=10), _t("o2", grand_total=10), _t("o3"), _t("o4"),
               _t("o5", grand_total=1)]
    stored: dict[str, dict[str, Any] | None] = {
        "o1": {"id": "o1", "grand_total": 10.0}, "o2": {"id": "o2", "grand_total": 11},
        "o3": None, "o4": None, "o5": {"id": "o5", "grand_total": 2}}
    errors = errors_by_record([*ERRORS, {"record_id": "o5", "record_type": "order",
                                         "error_message": "older failure"}])
    out = {o.id: o for o in classify("orders", "order", targets, stored, errors)}
    assert {k: o.status for k, o in out.items()} == {
        "o1": "verified", "o2": "different", "o3": "in_errors", "o4": "missing",
        "o5": "different"}
    assert out["o2"].differences == [Difference("grand_total", 10, 11)]
    assert out["o3"].error is not None
    assert out["o3"].error["error_message"] == "Record could not be imported"
    assert out["o5"].error is not None  # a different record keeps the error that explains it
    assert out["o1"].error is None and out["o4"].error is None
    assert out["o4"].source == "orders.jsonl:o4"


def test_custom_events_are_not_verifiable_never_passed() -> None:
    [outcome] = classify("events", "custom_event", [_t("e1")], {}, {})
    assert outcome.status == "not_verifiable"


def test_errors_without_a_record_id_name_nothing() -> None:
    assert errors_by_record(ERRORS) == {("order", "o3"): ERRORS[0]}
    assert errors_by_record(None) == {} and errors_by_record({"x": 1}) == {}
