"""``trace`` masks email addresses and phone numbers unless asked to show them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.cli.trace import mask


def test_masks_emails_and_phone_numbers_and_leaves_the_rest() -> None:
    text = ('{"email":"ann.lee@example.co.uk","phone_number":"+447700900123","id":"c17",'
            '"position":[9042, 103],"total":129.5}')
    assert mask(text) == ('{"email":"a***@example.co.uk","phone_number":"+4*********23",'
                          '"id":"c17","position":[9042, 103],"total":129.5}')
    assert mask("call 020 7946 0958 now") == "call 0**********58 now"


@given(st.from_regex(r"[a-z]{1,12}[0-9]{0,4}@[a-z]{1,10}\.(com|org|co\.uk)", fullmatch=True))
def test_no_address_survives(address: str) -> None:
    masked = mask(f'{{"email":"{address}"}}')
    assert address not in masked and "***@" in masked
