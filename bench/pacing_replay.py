"""A pacing replay: the in-process ``Pacer`` driven through a fixed scenario on a manual clock.

    .venv/bin/python bench/pacing_replay.py [--departures 240] [--seeds 100] > /tmp/replay.txt

Prints every departure (loop time, full precision) and every 429 with the pacer's state after
it (rate, margin, slack), then a summary. Nothing is random and nothing waits for real time, so
two source trees whose pacers decide alike print the same lines: run it from each tree's root
with that tree's interpreter (``cd /work/main && .venv/bin/python /path/to/pacing_replay.py``)
and ``diff`` the outputs. It imports only ``Backoff`` (``ometria_sync.net``'s face; before the
faces, ``ometria_sync.net.backoff``) and ``ometria_sync.pacing.pacer.Pacer``, and never
touches ``sys.path``: the tree is whichever ``ometria_sync`` that interpreter imports (printed
to stderr).

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

``--seeds N`` then replays N drawn scenarios (:meth:`Scenario.drawn`: rate from 1.5 to 200/s,
1-16 workers, latency, lateness, late connects and 429s of every kind drawn from the seed).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import heapq
import random
import sys
from dataclasses import dataclass, field

from ometria_sync.pacing.pacer import Pacer

try:
    from ometria_sync.net import Backoff
except ImportError:  # a tree from before the package faces (issue 28)
    from ometria_sync.net.backoff import Backoff  # type: ignore[import-not-found,no-redef]

#: event-loop turns given to the tasks after each step of the clock
_TURNS = 50


@dataclass(frozen=True)
class Scenario:
    """What happens to each departure: the fixed scenario by default, or a seeded draw."""

    rate: float = 4.0
    workers: int = 8
    latency: float = 0.5
    late_every: int = 7  # every n-th sleep of the clock wakes ``late`` s after it was due
    late: float = 0.040
    connect: dict[int, float] = field(default_factory=lambda: {20: 0.3})
    until_sent_every: int = 5
    #: departure -> (retry_after, queue_remaining) of its 429
    throttles: dict[int, tuple[float | None, int | None]] = field(default_factory=lambda: {
        40: (2.0, None), 80: (None, 0), 84: (None, 0),
        120: (None, 20_000), 121: (None, 20_000), 130: (None, 20_000)})
    wide_jitter: range = range(150, 170)
    queue_pressure: range = range(180, 200)
    seed: int = 7  # the jitter draws

    @classmethod
    def drawn(cls, seed: int, departures: int) -> Scenario:
        """A random scenario: rate, workers, latency, lateness, connects and 429s of every
        kind drawn from ``seed``."""
        rng = random.Random(seed)
        numbers = range(departures)
        throttles: dict[int, tuple[float | None, int | None]] = {}
        for number in rng.sample(numbers, rng.randint(0, 12)):
            throttles[number] = rng.choice([(rng.uniform(0.0, 3.0), None), (None, 0),
                                            (None, rng.randint(1, 50_000)), (None, None)])
        first, second = sorted(rng.sample(numbers, 2))
        return cls(rate=rng.choice([1.5, 4.0, 4.5, 10.0, 50.0, 200.0]),
                   workers=rng.randint(1, 16), latency=rng.uniform(0.01, 2.0),
                   late_every=rng.randint(2, 11), late=rng.uniform(0.0, 0.15),
                   connect={n: rng.uniform(0.0, 0.5) for n in rng.sample(numbers, 5)},
                   until_sent_every=rng.randint(1, 9), throttles=throttles,
                   wide_jitter=range(first, second), queue_pressure=range(second, second + 20),
                   seed=seed)


class ReplayClock:
    """A clock that moves only between steps: each step wakes the earliest sleeper, and every
    ``late_every``-th sleep wakes ``late`` seconds after it was due."""

    def __init__(self, *, late_every: int, late: float) -> None:
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


async def replay(departures: int = 240, scenario: Scenario | None = None) -> list[str]:
    """The scenario's lines: one per departure and per 429, then a summary."""
    s = scenario or Scenario()
    clock = ReplayClock(late_every=s.late_every, late=s.late)
    pacer = Pacer(s.rate, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(rand=random.Random(28).uniform)
    draws = random.Random(s.seed)
    lines: list[str] = []
    times: list[float] = []
    count = 0
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    running = s.workers

    async def worker(name: int) -> None:
        nonlocal count, running
        while count < departures:
            number = count
            until_sent = number in s.connect or number % s.until_sent_every == 0
            count += 1
            slot = await pacer.acquire(until_sent=until_sent)
            granted = slot.at
            if number in s.connect:  # a new connection: written later than the slot
                await clock.sleep(s.connect[number])
            if until_sent:
                slot.sent(clock.time())
            times.append(slot.at)
            lines.append(f"departure {number} worker={name} granted={granted!r} "
                         f"left={slot.at!r} {_state(pacer)}")
            await clock.sleep(s.latency)
            jitter = 0.045 if number in s.wide_jitter else draws.uniform(0.001, 0.030)
            if number in s.queue_pressure:
                pacer.observe_queue(5_000 - 240 * (number - s.queue_pressure.start), 50_000)
            elif number == s.queue_pressure.stop:
                pacer.observe_queue(50_000, 50_000)
            answer = s.throttles.get(number)
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

    tasks = [asyncio.ensure_future(worker(i)) for i in range(s.workers)]
    await clock.run(finished)
    await asyncio.gather(*tasks)
    times.sort()
    most = max(bisect.bisect_left(times, start + 1.0) - i for i, start in enumerate(times))
    lines.append(f"summary departures={len(times)} first={times[0]!r} last={times[-1]!r} "
                 f"most_in_any_second={most} largest_slack={pacer.largest_slack!r} "
                 f"{_state(pacer)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--departures", type=int, default=240)
    parser.add_argument("--seeds", type=int, default=0,
                        help="also replay this many drawn scenarios (seeds 0 to N-1)")
    args = parser.parse_args()
    print(f"pacer from {sys.modules[Pacer.__module__].__file__}", file=sys.stderr)
    for line in asyncio.run(replay(args.departures)):
        print(line)
    for seed in range(args.seeds):
        print(f"scenario {seed}")
        scenario = Scenario.drawn(seed, args.departures)
        for line in asyncio.run(replay(args.departures, scenario)):
            print(line)


if __name__ == "__main__":
    main()
