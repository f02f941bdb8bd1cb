"""Decoding one JSON line: the reason given for a bad line does not depend on msgspec's version."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.sources.files import jsonl
from ometria_sync.sources.files.jsonl import decode_line

LINE = b'{"id":"u1","name":"caf\xe9"}'


def _raise(exc: Exception) -> object:
    def decode(raw: bytes) -> object:
        raise exc
    return decode


@pytest.mark.parametrize("raised", [
    UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte"),  # msgspec <= 0.22
    msgspec.DecodeError("Invalid UTF-8 encoded string"),                      # msgspec 0.23
])
def test_invalid_utf8_names_the_byte_whichever_exception_msgspec_raises(
    monkeypatch: pytest.MonkeyPatch, raised: Exception
) -> None:
    monkeypatch.setattr(jsonl, "_decode", _raise(raised))
    assert decode_line(LINE) == (None, 'not valid utf-8: set source.encoding (e.g. "cp1252") '
                                       'if the file is not UTF-8, got byte 0xE9 at byte 23 '
                                       'of the line')


def test_valid_utf8_that_is_not_json_says_invalid_json() -> None:
    value, reason = decode_line(b'{"id": caf\xc3\xa9}')
    assert value is None and reason is not None and reason.startswith("invalid JSON: ")


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_give_a_reason(raw: bytes) -> None:
    _, reason = decode_line(raw)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        assert reason is not None and reason.startswith("not valid utf-8: set source.encoding")
        assert reason.endswith(f"at byte {bad.start + 1} of the line")
    else:
        assert (reason is None) or reason.startswith("invalid JSON")
