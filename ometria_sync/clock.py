"""The time seams: what reads the clock or waits takes these, so tests drive a fake clock.

Defaults are the real ones (``time.monotonic``, ``asyncio.sleep``); the pacer, the batcher's
linger, the hash-flush age and the progress reporter all take them, and never read real time
behind their caller's back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

#: seconds on a monotonic clock
Clock = Callable[[], float]
#: wait this many seconds
Sleep = Callable[[float], Awaitable[None]]
