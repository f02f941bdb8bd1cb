"""Requests, 429s and retries over a stream's run, counted per time bucket: what the HTML
report draws against the limit.

Buckets start one second wide. The size is bounded: past :data:`MAX_BUCKETS` buckets, each
pair of neighbours merges into one twice as wide (a run of ten hours keeps 1-hour-per-3600
buckets of 16 s), so a report never grows with the run's length beyond a few tens of KB. The
counts always add up to the stream's totals (``requests``, ``throttled``, ``retries``).
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

#: the most buckets a timeline keeps; past it, the buckets double in width
MAX_BUCKETS = 3600

Kind = Literal["requests", "throttled", "retries"]


class Timeline(msgspec.Struct):
    """Counts per bucket of ``bucket_seconds``, from ``started_at`` (Unix time of the first
    event; the buckets count from there on the monotonic clock)."""

    started_at: float | None = None
    bucket_seconds: int = 1
    requests: list[int] = msgspec.field(default_factory=list)
    throttled: list[int] = msgspec.field(default_factory=list)
    retries: list[int] = msgspec.field(default_factory=list)
    #: the monotonic time of the first event (not reported)
    origin: float | None = None

    def note(self, kind: Kind, now: float) -> None:
        """One event of ``kind`` at monotonic time ``now``."""
        if self.origin is None:
            self.origin = now
            self.started_at = time.time()
        index = int(max(0.0, now - self.origin) // self.bucket_seconds)
        while index >= MAX_BUCKETS:
            self._coarsen()
            index = int(max(0.0, now - self.origin) // self.bucket_seconds)
        for series in (self.requests, self.throttled, self.retries):
            if len(series) <= index:
                series.extend([0] * (index + 1 - len(series)))
        getattr(self, kind)[index] += 1

    def _coarsen(self) -> None:
        self.bucket_seconds *= 2
        for name in ("requests", "throttled", "retries"):
            series: list[int] = getattr(self, name)
            merged = [sum(series[i:i + 2]) for i in range(0, len(series), 2)]
            setattr(self, name, merged)
