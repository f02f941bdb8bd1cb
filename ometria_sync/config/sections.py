"""The job file's sections as frozen Structs: every key, its type, its default and its range.

Unknown keys are refused (``forbid_unknown_fields``), so a misspelt key is an error naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ometria_sync.net import DEFAULT_SCHEMA, HttpRetrySettings, sqlite_url
from ometria_sync.schemas import RecordType
from ometria_sync.sources import DEFAULT_MAX_LINE_BYTES, MaxLineBytes, SourceSpec
from ometria_sync.state import WARNINGS_PER_STREAM

#: a stream's or a job's name, matched whole (``$`` would let a trailing newline through)
Name = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+\Z")]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class OmetriaSettings(_Section, HttpRetrySettings, frozen=True):
    """``[ometria]``: where to send and how fast (and the retry settings of ``net``)."""

    base_url: str = "https://api.ometria.com/v2"
    api_key_env: str = "OMETRIA_API_KEY"
    api_key_file: str | None = None
    rate_limit_per_second: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 4.0
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    #: dispatchers working at once; 0 picks ``rate x 2 s`` (enough to hide 2 s answers)
    concurrency: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0
    #: total seconds one batch may spend waiting out 429s before the run fails
    max_throttle_wait: Annotated[float, msgspec.Meta(ge=0)] = 900.0
    #: share this account's rate budget with other processes through this Redis
    #: (redis:// or rediss://); or name the environment variable holding that URL
    rate_limit_url: str | None = None
    rate_limit_url_env: str | None = None
    #: seconds to keep retrying when that Redis is lost mid-run, before the run stops (exit 1)
    rate_limit_retry_for: Annotated[float, msgspec.Meta(ge=0)] = 30.0

    @property
    def dispatchers(self) -> int:
        if self.concurrency:
            return self.concurrency
        return max(2, min(256, round(self.rate_limit_per_second * 2)))


class StateSettings(_Section, frozen=True):
    """``[state]``: where progress and refused records are kept."""

    #: ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB``
    checkpoint_url: str = sqlite_url("state/checkpoints.db")
    #: read the URL from this environment variable instead (when it holds a password)
    checkpoint_url_env: str | None = None
    #: the PostgreSQL schema the state's tables live in
    schema: str = DEFAULT_SCHEMA
    #: "file": refused records go to ``dead_letter_path``; "database": into the state store
    dead_letter: Literal["file", "database"] = "file"
    dead_letter_path: str = "state/dead-letter.jsonl"
    #: lines per stream per run in ``warnings.jsonl`` (beside ``dead_letter_path``): the
    #: records warnings were given for; 0 writes none
    warnings_per_stream: Annotated[int, msgspec.Meta(ge=0)] = WARNINGS_PER_STREAM
    dry_run_dir: str = "state/dry-run"


class RunSettings(_Section, frozen=True):
    """``[run]``: shutdown and batching behaviour."""

    #: seconds SIGINT/SIGTERM waits for in-flight batches before giving up on them
    grace_period: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    #: seconds a half-full batch waits for more records before it is sent anyway
    linger: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    #: chunks (about 256 KiB or 500 rows each) buffered between a source and its batcher
    queue_chunks: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4
    #: a line (JSONL) or CSV line longer than this is dead-lettered with its first bytes and its
    #: length, never held whole; a source may set its own
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES
    #: when records not delivered make the run exit 3: "new_refusals" (only those this run
    #: found new, not the refusals of the same content an earlier run found), "any_refusal"
    exit_on: Literal["new_refusals", "any_refusal"] = "new_refusals"
    #: runs that may try a record that was not delivered (retries ran out, cut off at the
    #: grace period, not confirmed) before it is parked: kept in the ledger, no longer resent
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5


class ReportSettings(_Section, frozen=True):
    """``[report]``: what a person (and monitoring) sees of a run."""

    #: one JSON report per run is written here as <run-id>.json
    folder: str = "state/reports"
    #: bars on a terminal, JSON progress lines otherwise ("auto"), or "bars", "log", "off"
    progress: Literal["auto", "bars", "log", "off"] = "auto"
    #: seconds between JSON progress lines
    progress_interval: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: write Prometheus metrics here at the end of each run (node_exporter textfile collector)
    metrics_textfile: str | None = None
    #: push the same metrics to this Pushgateway (host:port or URL)
    pushgateway_url: str | None = None
    #: also write the HTML report of each run, <folder>/<run-id>.html (charts, no network)
    html: bool = False


class AlertSettings(_Section, frozen=True):
    """``[alerts]``: when a run (or ``ometria-sync health``) calls the job unhealthy, and whom
    to tell. Every rule is off until set (``docs/health.md``)."""

    #: unhealthy when no run finished (exit 0 or 3) in this many hours
    max_hours_since_success: Annotated[float, msgspec.Meta(gt=0)] | None = None
    #: unhealthy when the last run refused more records than this
    max_refused: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: ... or a larger share of the records it read (0.01: 1%)
    max_refused_share: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    #: unhealthy when the last run refused more records than this that it found new (not the
    #: same content an earlier run refused: the ledger's ``refused_new``)
    max_refused_new: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: unhealthy when the last run sent less than this share of the median of the 7 runs
    #: before it (0.5: half): a feed that silently shrank
    min_sent_share_of_median: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    #: unhealthy when the last run took longer than this many times its plan (its requests
    #: at the limit), and by more than a minute
    max_duration_vs_plan: Annotated[float, msgspec.Meta(ge=1)] | None = None
    #: the environment variable holding a webhook URL (Slack's incoming webhooks, or any
    #: receiver of a JSON ``{"text": ...}`` POST): told when a run fails or is unhealthy
    webhook_url_env: str | None = None


class StreamSettings(_Section, frozen=True):
    """One ``[[streams]]`` entry."""

    name: Name
    record_type: RecordType
    source: SourceSpec
    #: "update": a record needs only its id (Ometria merges); "create": also what creation needs
    mode: Literal["update", "create"] = "update"
    #: dead-letter records with fields the schema does not know, instead of warning
    strict: bool = False
    #: run alongside the previous stream instead of after it
    parallel: bool = False
    #: skip records whose content is unchanged since Ometria last acknowledged them
    change_detection: bool = True
    #: "module:function": a Python function from the record (a dict) to a record or None
    #: (skip it), from the job file's folder or PYTHONPATH, applied before validation
    transform: str | None = None
    enabled: bool = True
    #: ids this job delivered that a complete read no longer has: "ignore" them, or
    #: "deactivate" them in Ometria (``docs/deletions.md``)
    on_missing: Literal["ignore", "deactivate"] = "ignore"
    #: deactivate nothing (exit 1) when more than this share of the delivered ids is missing
    max_missing_fraction: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.1
    #: a missing contact: marketing_optin EXPLICITLY_OPTEDOUT, or removed from ``on_missing_lists``
    on_missing_contact: Literal["opt_out", "remove_from_lists"] = "opt_out"
    on_missing_lists: list[str | int] = msgspec.field(default_factory=list)
    #: a missing order is resent with ``is_valid: false`` and this status
    on_missing_order_status: Annotated[str, msgspec.Meta(min_length=1)] = "cancelled"


class JobSettings(_Section, frozen=True):
    """The whole job file."""

    streams: list[StreamSettings]
    #: the job's name: its state (checkpoints, change hashes, run history, dead letters, the
    #: account, the run lock) is kept under it, so several jobs can share one state store.
    #: Not set: the job file's name without its extension (``nightly.toml``: ``nightly``)
    name: Name | None = None
    ometria: OmetriaSettings = msgspec.field(default_factory=OmetriaSettings)
    state: StateSettings = msgspec.field(default_factory=StateSettings)
    run: RunSettings = msgspec.field(default_factory=RunSettings)
    report: ReportSettings = msgspec.field(default_factory=ReportSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
