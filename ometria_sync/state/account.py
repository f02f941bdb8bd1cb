"""Which Ometria account a checkpoint store belongs to: its base URL and a hash of its key.

Checkpoints and change hashes say what *one account* already holds. Resumed against another
account (staging's state, live's key), a run would start at the end and skip every record as
unchanged, and exit 0 with nothing sent. So the store keeps the account's identity and a sending
run against another account is refused (see :class:`AccountMismatch`). The key itself is never
stored: only a SHA-256 of it (with a fixed prefix, so that the same key shows the same short
hash in every store and message).
"""

from __future__ import annotations

import hashlib

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.net.urls import normalise_url

_DOMAIN = b"ometria-sync account key\x00"


class AccountMismatch(StateError):
    """The checkpoint store belongs to another Ometria account: nothing was sent."""


class AccountIdentity(msgspec.Struct, frozen=True):
    """An Ometria account as the store remembers it: the normalised base URL and
    ``sha256(prefix + key)`` in hex. Never the key."""

    base_url: str
    key_sha256: str

    @classmethod
    def of(cls, base_url: str, api_key: str) -> AccountIdentity:
        digest = hashlib.sha256(_DOMAIN + api_key.encode("utf-8")).hexdigest()
        return cls(normalise_url(base_url), digest)

    def describe(self) -> str:
        """``https://api.ometria.com/v2 key …3fa29c`` (a short prefix of the hash)."""
        return f"{self.base_url} key …{self.key_sha256[:8]}"


def mismatch(stored: AccountIdentity, current: AccountIdentity) -> AccountMismatch:
    return AccountMismatch(
        f"this state belongs to account {stored.describe()}, not {current.describe()}; to "
        "sync another account use another state.checkpoint_url, or `ometria-sync reset "
        "JOB.toml` to start over (everything is sent again)")
