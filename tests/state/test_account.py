"""The account a checkpoint store belongs to: recorded once, compared, never the key itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ometria_sync.errors import StateError
from ometria_sync.state.sqlite_sql import SCHEMA_VERSION, SqliteCheckpointStore
from ometria_sync.state.store import AccountIdentity, AccountMismatch, normalise_url

KEY = "canary-live-5f0e2a91c7-never-store-me"
STAGING = AccountIdentity.of("https://api.ometria.com/v2", "staging-key-1b2c")
LIVE = AccountIdentity.of("https://api.ometria.com/v2", KEY)


def test_the_first_sending_run_records_the_account_and_the_same_one_passes(
        tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    assert store.claim_account(STAGING) is True
    assert store.claim_account(AccountIdentity.of("HTTPS://API.ometria.com:443/v2/",
                                                  "staging-key-1b2c")) is False
    assert store.account() == STAGING


def test_another_key_or_base_url_is_refused_naming_both_without_the_key(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.claim_account(STAGING)
    with pytest.raises(AccountMismatch) as caught:
        store.claim_account(LIVE)
    message = str(caught.value)
    assert STAGING.describe() in message and LIVE.describe() in message
    assert "reset JOB.toml" in message and "checkpoint_url" in message
    assert KEY not in message
    with pytest.raises(AccountMismatch):
        store.claim_account(AccountIdentity.of("https://staging.example.com/v2",
                                               "staging-key-1b2c"))


def test_the_key_never_appears_in_the_state_files(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.claim_account(AccountIdentity.of("https://api.ometria.com/v2", KEY))
    store.save("contacts", "", [10, 1], "fp", 1)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the database, its WAL
    store.close()
    raw += (tmp_path / "cp.db").read_bytes()
    assert KEY.encode() not in raw
    assert LIVE.key_sha256.encode() in raw


def test_reset_of_the_whole_state_forgets_the_account(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.claim_account(STAGING)
    store.reset("contacts")
    assert store.account() == STAGING
    store.reset()
    assert store.account() is None and store.claim_account(LIVE) is True


def test_a_store_from_before_accounts_is_migrated_and_adopts_the_next_account(
        tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE checkpoints (stream TEXT NOT NULL, part TEXT NOT NULL,
            position TEXT NOT NULL, fingerprint TEXT, delivered INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL, PRIMARY KEY (stream, part));
        CREATE TABLE stream_runs (stream TEXT PRIMARY KEY, started_at TEXT NOT NULL,
            finished_at TEXT, outcome TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0);
        INSERT INTO checkpoints VALUES ('contacts', '', '[42,3]', 'fp', 3, '2026-01-01');
    """)
    old.close()
    store = SqliteCheckpointStore(path)
    assert store.load("contacts", "") is not None
    assert store.account() is None and store.claim_account(LIVE) is True
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "cp.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer ometria-sync"):
        SqliteCheckpointStore(tmp_path / "cp.db")


def test_base_urls_are_normalised() -> None:
    assert normalise_url("HTTP://LocalHost:80/v2/") == "http://localhost/v2"
    assert normalise_url("http://127.0.0.1:8080/v2") == "http://127.0.0.1:8080/v2"
