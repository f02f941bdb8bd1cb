"""Shared fixtures: job files written into a temporary folder."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from ometria_sync.config import Job, load_job

# Shared machines are noisy: no per-example deadline. In CI, examples are derived from each
# test's name, so a run is reproducible (explore new ones locally, where failures can be kept).
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Job]:
    """Write a job file into tmp_path (streams default to one JSONL contact stream)."""

    def make(extra: str = "", streams: str | None = None, **ometria: Any) -> Job:
        settings = {"base_url": "http://127.0.0.1:9/v2", "rate_limit_per_second": 1000,
                    "backoff_base": 0.01, "backoff_cap": 0.05}
        settings.update(ometria)
        lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
        streams = streams if streams is not None else textwrap.dedent("""
            [[streams]]
            name = "contacts"
            record_type = "contact"
            source = { kind = "jsonl", path = "data/contacts.jsonl" }
        """)
        text = f"[ometria]\n{lines}\n\n[run]\nlinger = 0.05\ngrace_period = 2\n{extra}\n{streams}"
        path = tmp_path / "job.toml"
        path.write_text(text)
        return load_job(path)

    return make


from tests.mysql import my_db  # noqa: E402,F401  (fixture for the MySQL tests)
from tests.pg import pg_schema, pg_table  # noqa: E402,F401  (fixtures for the PostgreSQL tests)
from tests.s3 import s3, s3_server  # noqa: E402,F401  (a real S3 API on 127.0.0.1)
