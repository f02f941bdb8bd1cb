"""A pacing replay: the in-process ``Pacer`` driven through a fixed scenario on a manual clock.

    .venv/bin/python bench/pacing_replay.py [--departures 240] > /tmp/replay.txt

Prints every departure (loop time, full precision) and every 429 with the pacer's state after
it (rate, margin, slack), then a summary. Nothing is random and nothing waits for real time, so
two source trees whose pacers decide alike print the same lines: run it from each tree's root
with that tree's interpreter (``cd /work/main && .venv/bin/python /path/to/pacing_replay.py``)
and ``diff`` the outputs. It imports only ``ometria_sync.net.backoff.Backoff`` and
``ometria_sync.pacing.pacer.Pacer`` (their paths are the same before and after issue 28) and
never touches ``sys.path``: the tree is whichever ``ometria_sync`` that interpreter imports
(printed to stderr).

The scenario, 8 workers sending through one pacer at 4 requests/s, answers after 0.5 s:

* saturation: every worker asks again as soon as its answer came;
* late wake-ups: every 7th sleep of the clock returns 40 ms late (a busy event loop);
* a late departure: departure 20 is granted ``until_sent`` and its request is written 0.3 s
  after its slot (a new connection), reported with ``Slot.sent``; every 5th is granted
  ``until_sent`` and written at once;
* jitter samples: every answer reports the network's variation of delay (a seeded draw of
  1-30 ms, 45 ms for departures 150-169) with ``Slot.done(jitter=...)``;
* a 429 with ``Retry-After: 2`` (departure 40);
* 429s for a full import queue (departures 80 and 84, ``X-QueueSize-Remaining: 0``): AIMD
  halves the rate, successes win it back;
* 429s with room in the import queue (departures 120, 121, 130): the margin widens;
* the import queue's headers: nearly full for departures 180-199, then free again.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import sys

from ometria_sync.net.backoff import Backoff
from ometria_sync.pacing.pacer import Pacer

RATE = 4.0
WORKERS = 8
LATENCY = 0.5
#: event-loop turns given to the tasks after each step of the clock
_TURNS = 50


class ReplayClock:
    """A clock that moves only between steps: each step wakes the earliest sleeper, and every
    ``late_every``-th sleep wakes ``late`` seconds after it was due."""

    def __init__(self, *, late_every: int = 7, late: float = 0.040) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0
        self._late_every = late_every
        self._late = late

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._count += 1
        due = self.now + max(seconds, 0.0)
        if self._count % self._late_every == 0:
            due += self._late
        heapq.heappush(self._sleepers, (due, self._count, future))
        await future

    async def run(self, done: asyncio.Future[None]) -> None:
        """Step until ``done``: let every task run, then wake the earliest sleeper."""
        while not done.done():
            for _ in range(_TURNS):
                await asyncio.sleep(0)
            if done.done() or not self._sleepers:
                break
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            future.set_result(None)


def _state(pacer: Pacer) -> str:
    return f"rate={pacer.rate!r} margin={pacer.margin!r} slack={pacer.slack!r}"


async def replay(departures: int = 240) -> list[str]:
    """The scenario's lines: one per departure and per 429, then a summary."""
    clock = ReplayClock()
    pacer = Pacer(RATE, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(rand=random.Random(28).uniform)
    draws = random.Random(7)
    lines: list[str] = []
    times: list[float] = []
    count = 0
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    running = WORKERS

    async def worker(name: int) -> None:
        nonlocal count, running
        while count < departures:
            number = count
            until_sent = number == 20 or number % 5 == 0
            count += 1
            slot = await pacer.acquire(until_sent=until_sent)
            granted = slot.at
            if number == 20:
                await clock.sleep(0.3)  # a new connection: written 0.3 s after the slot
            if until_sent:
                slot.sent(clock.time())
            times.append(slot.at)
            lines.append(f"departure {number} worker={name} granted={granted!r} "
                         f"left={slot.at!r} {_state(pacer)}")
            await clock.sleep(LATENCY)
            jitter = 0.045 if 150 <= number < 170 else draws.uniform(0.001, 0.030)
            if 180 <= number < 200:
                pacer.observe_queue(5_000 - 240 * (number - 180), 50_000)
            elif number == 200:
                pacer.observe_queue(50_000, 50_000)
            answer = _answer(number)
            if answer is None:
                pacer.on_success()
            else:
                retry_after, remaining = answer
                pause = pacer.throttled(backoff, retry_after, remaining)
                lines.append(f"429 {number} at={clock.time()!r} retry_after={retry_after!r} "
                             f"queue_remaining={remaining!r} pause={pause!r} {_state(pacer)}")
            slot.done(jitter=jitter)
        running -= 1
        if running == 0:
            finished.set_result(None)

    tasks = [asyncio.ensure_future(worker(i)) for i in range(WORKERS)]
    await clock.run(finished)
    await asyncio.gather(*tasks)
    times.sort()
    most = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    lines.append(f"summary departures={len(times)} first={times[0]!r} last={times[-1]!r} "
                 f"most_in_any_second={most} largest_slack={pacer.largest_slack!r} "
                 f"{_state(pacer)}")
    return lines


def _answer(number: int) -> tuple[float | None, int | None] | None:
    """``(retry_after, queue_remaining)`` of the 429 departure ``number`` gets, or None (2xx)."""
    if number == 40:
        return 2.0, None
    if number in (80, 84):
        return None, 0
    if number in (120, 121, 130):
        return None, 20_000
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--departures", type=int, default=240)
    args = parser.parse_args()
    print(f"pacer from {sys.modules[Pacer.__module__].__file__}", file=sys.stderr)
    for line in asyncio.run(replay(args.departures)):
        print(line)


if __name__ == "__main__":
    main()
