"""The emulator's settings, shared by the CLI and tests."""

from __future__ import annotations

import msgspec

DEV_KEY = "emulator-key"


class EmulatorOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the local Ometria behaves. Rates are fractions in [0, 1]; latency is (min, max) s."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEV_KEY
    rate: float = 4.0
    latency: tuple[float, float] = (0.0, 0.0)
    #: delay (min, max) s before an arrival is stamped and counted, as a network's varying
    #: one-way delay shifts arrivals relative to departures
    arrival_jitter: tuple[float, float] = (0.0, 0.0)
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    #: fraction of valid pushes whose records are accepted but whose answer is lost (the
    #: connection closes): the client cannot know the outcome, and retries
    lost_answer_rate: float = 0.0
    #: fraction of accepted records that then fail at import (Ometria's 2xx means "queued")
    import_failure_rate: float = 0.0
    #: of those, the fraction that fail without any trace (not listed in ``/push/_errors``)
    silent_share: float = 0.5
    queue_capacity: int = 50_000
    drain_per_second: float = 10_000.0
    #: send Retry-After (1 s) on 429s and 5xx (Ometria does not document one; the engine must
    #: cope without)
    retry_after: bool = False
    store: str | None = None
    seed: int | None = None
