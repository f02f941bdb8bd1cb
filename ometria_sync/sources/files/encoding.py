"""The text encoding of a file source (``encoding = "cp1252"``): its name checked once, a line's
bytes decoded, and the one reason a line that does not decode is refused with.

Lines are split on the byte ``\\n`` before they are decoded (:mod:`.lines`), so positions and
checkpoints stay byte offsets whatever the encoding. That needs an encoding in which ``\\n``,
``\\r``, the quote and the delimiter are the ASCII bytes and never part of another character:
UTF-8, the single-byte code pages (cp1252, latin-1, ...) and the double-byte ones whose
second bytes are 0x40 or above (Shift_JIS, GBK, Big5). UTF-16 and UTF-32 are refused with the
advice to convert the file.

UTF-8, the default, is the fast path: JSON Lines hands its bytes to the JSON decoder unchanged
and CSV decodes them with the built-in codec. The reason for a line that does not decode names
the encoding and the option, and puts the byte where it failed after ``got``, so the run's
summary groups every such line under one reason (``stats.reason_key`` drops what follows
``got``) while each dead-letter entry still says where.
"""

from __future__ import annotations

import codecs

from ometria_sync.errors import ConfigError

#: the default, and the fast path
UTF8 = "utf-8"
#: what must encode to itself for lines, quotes and delimiters to be found in the bytes
_ASCII_PROBE = "\n\r\",;|\t'+0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ {}[]:"


def codec_name(key: str, name: str) -> str:
    """``name`` as Python's codec calls it (``UTF8`` and ``utf-8-sig`` -> ``utf-8``: a BOM is
    accepted anyway; ``windows-1252`` -> ``cp1252``). ConfigError naming ``key`` for a name
    Python does not know, a codec that is not a text encoding (``base64``), or one lines
    cannot be split in (UTF-16)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ConfigError(key, f"unknown encoding {name!r}; use a Python codec name such as "
                               '"utf-8", "cp1252" or "latin-1"') from None
    if not getattr(info, "_is_text_encoding", True):
        raise ConfigError(key, f"{name!r} is not a text encoding")
    canonical = UTF8 if info.name in (UTF8, "utf-8-sig") else info.name
    try:
        same = _ASCII_PROBE.encode(canonical) == _ASCII_PROBE.encode("ascii")
    except UnicodeError:
        same = False
    if not same:
        raise ConfigError(key, f"{name!r} is not supported: lines are found by their ASCII "
                               "newline byte; convert the file to UTF-8 (e.g. with iconv)")
    return canonical


def undecodable(encoding: str, error: UnicodeDecodeError) -> str:
    """Why a line is refused: ``not valid utf-8: set source.encoding (e.g. "cp1252") if the
    file is not UTF-8, got byte 0xE9 at byte 33 of the line``."""
    hint = ('set source.encoding (e.g. "cp1252") if the file is not UTF-8' if encoding == UTF8
            else "check source.encoding (the file's bytes do not fit it)")
    byte = error.object[error.start] if error.start < len(error.object) else 0
    return (f"not valid {encoding}: {hint}, got byte 0x{byte:02X} at byte {error.start + 1} "
            "of the line")


def decode_line(raw: bytes, encoding: str) -> tuple[str, str | None]:
    """``raw`` as text, and None; or, when it does not decode, the text with the bad bytes
    escaped (``surrogateescape``: :func:`shown` makes them U+FFFD) and the reason."""
    try:
        return raw.decode(encoding), None
    except UnicodeDecodeError as exc:
        return raw.decode(encoding, "surrogateescape"), undecodable(encoding, exc)


def shown(text: str, encoding: str) -> str:
    """Text decoded with ``surrogateescape`` as a person sees it: each undecodable byte is
    U+FFFD (for the dead letter)."""
    return text.encode(encoding, "surrogateescape").decode(encoding, "replace")


def encoding_fingerprint(fingerprint: str | None, encoding: str) -> str | None:
    """A part's fingerprint with its encoding: reading a file again in another encoding starts
    from the top (the rows refused as undecodable, now behind the checkpoint, are read again;
    change detection keeps the ones already sent from going out twice). UTF-8 leaves the
    fingerprint as it was, so checkpoints written before the option existed still resume."""
    if fingerprint is None or encoding == UTF8:
        return fingerprint
    return f"{fingerprint}:{encoding}"
