"""What the streams of one job run are given, and what they share and change as they go.

:class:`RunContext` is fixed for the run: the settings, what the run's options mean for every
stream (checkpoints saved, resumed, change detection) and the services the streams use (the
pacer, the state store, the dead letter, the stop signal). :class:`SharedRun` is what the
streams change: the fatal errors, the live counters the progress display reads, and the one
version order per record type. Streams that run side by side share both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ometria_sync.clock import Sleep
from ometria_sync.config import JobSettings, StreamSettings
from ometria_sync.net.backoff import Backoff
from ometria_sync.ometria.push import Pusher
from ometria_sync.pacing.protocol import RatePacer
from ometria_sync.pipeline.batcher import Validator, schema_validator
from ometria_sync.pipeline.dispatch import RetryPolicy
from ometria_sync.pipeline.job_io import RunOptions, sending_mode
from ometria_sync.pipeline.shutdown import Shutdown
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.versions import VersionOrder
from ometria_sync.state.deadletter import DeadLetterWriter
from ometria_sync.state.store import StateStore

ValidatorFactory = Callable[[StreamSettings], Validator]
PusherFactory = Callable[[StreamSettings], Pusher]


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """What every stream of one job run is given; never changes during the run."""

    settings: JobSettings
    pacer: RatePacer
    policy: RetryPolicy
    dead_letter: DeadLetterWriter
    #: the state store (SQLite or PostgreSQL)
    state: StateStore
    validator_for: ValidatorFactory
    pusher_for: PusherFactory
    shutdown: Shutdown
    save_checkpoints: bool = True
    #: False reads every part from the beginning (``validate``, a full refresh)
    resume: bool = True
    #: send unchanged records too (and refresh their hashes)
    full_refresh: bool = False
    #: skip unchanged records (off for ``validate``, which must see every record)
    detect_changes: bool = True
    sleep: Sleep = asyncio.sleep

    @classmethod
    def for_options(
        cls,
        options: RunOptions,
        *,
        settings: JobSettings,
        pacer: RatePacer,
        state: StateStore,
        dead_letter: DeadLetterWriter,
        pusher_for: PusherFactory,
        validator_for: ValidatorFactory | None,
        shutdown: Shutdown,
    ) -> RunContext:
        """What ``options`` (a dry run, ``validate``, ``--full-refresh``, a repair) mean for
        every stream; the schemas validate unless ``validator_for`` says otherwise."""
        ometria = settings.ometria
        return cls(
            settings=settings,
            pacer=pacer,
            policy=RetryPolicy(
                max_retries=ometria.max_retries,
                max_throttle_wait=ometria.max_throttle_wait,
                backoff=Backoff(ometria.backoff_base, ometria.backoff_cap),
            ),
            dead_letter=dead_letter,
            state=state,
            validator_for=validator_for or schema_validator,
            pusher_for=pusher_for,
            shutdown=shutdown,
            save_checkpoints=sending_mode(options) and not options.repair,
            resume=not (options.validate_only or options.full_refresh or options.repair),
            full_refresh=options.full_refresh,
            detect_changes=not (options.validate_only or options.repair),
        )


class SharedRun:
    """What the streams of one run change and the run reads: fatal errors (the first one is
    the run's error), every stream's live counters, the version order per record type."""

    def __init__(self) -> None:
        self._errors: list[BaseException] = []
        #: every stream's live counters, by name (read by the progress display while it runs)
        self.live: dict[str, StreamStats] = {}
        #: per record type: which unsettled batch holds each id's latest version
        self._versions: dict[str, VersionOrder] = {}

    def fail(self, exc: BaseException) -> None:
        """Record a failure that makes the run fatal (exit 1); the first one is reported."""
        self._errors.append(exc)

    @property
    def failed(self) -> bool:
        return bool(self._errors)

    @property
    def error(self) -> str | None:
        """The first fatal failure, as the run's result reports it (None: none)."""
        return str(self._errors[0]) if self._errors else None

    def track(self, stats: StreamStats) -> None:
        """Show ``stats`` (updated in place) as its stream's live counters."""
        self.live[stats.stream] = stats

    def version_order(self, record_type: str) -> VersionOrder:
        """The one order shared by every stream of ``record_type`` in this run."""
        return self._versions.setdefault(record_type, VersionOrder())
