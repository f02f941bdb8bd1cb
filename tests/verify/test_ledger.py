"""The ledger: the latest version of an id across streams of one type wins and owns it; an id
a selected stream held stays selected; profiles match contacts by customer id before email."""

from __future__ import annotations

from typing import Any

from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.select import Target


def _t(rid: str, **record: Any) -> Target:
    return Target(key=f"contact\x00{rid}", id=rid, record={"id": rid, **record},
                  source=f"f:{rid}")


def test_a_later_stream_of_the_type_owns_the_id_and_keeps_it_selected() -> None:
    ledger = Ledger()
    ledger.add(0, "full", [_t("a", v=1), _t("b", v=1)], selected=True)
    ledger.add(2**40, "delta", [_t("a", v=2)], selected=False)
    assert ledger.owners() == ["full", "delta"]
    [[(owned, _)]] = list(ledger.chunks("delta"))
    assert owned.record == {"id": "a", "v": 2}
    assert [t.id for chunk in ledger.chunks("full") for t, _ in chunk] == ["b"]
    ledger.close()


def test_profiles_match_by_customer_id_over_an_earlier_email_match() -> None:
    ledger = Ledger()
    ledger.add(0, "contacts", [_t("c1", customer_id="u1", email="Ann@X.co"),
                               _t("c2", email="bob@x.co")], selected=True)
    ledger.match_profiles("contacts", [{"id": "p1", "email": "ann@x.co"},
                                       {"id": "p0", "email": "bob@x.co"}])
    ledger.match_profiles("contacts", [{"id": "p2", "customer_id": "u1"},
                                       {"id": "p3", "email": "bob@x.co"}])
    found = {t.id: stored for chunk in ledger.chunks("contacts") for t, stored in chunk}
    assert found["c1"] == {"id": "p2", "customer_id": "u1"}  # customer id wins
    assert found["c2"] == {"id": "p0", "email": "bob@x.co"}  # the first email match stays
    ledger.close()
