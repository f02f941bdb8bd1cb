"""The in-process pacer: even spacing, pauses for everybody, AIMD and queue pressure; its
mechanisms alone (the grid's catch-up and restart, the window's count, the pauses' streak);
and the run lock's say over departures (``PermittedPacer``), asked before a slot is taken and
again before it leaves."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

from ometria_sync.errors import StateError
from ometria_sync.net.http import Backoff
from ometria_sync.pacing.pacer import CATCH_UP, Pacer, PermittedPacer, Slot, _Grid, _Pauses, _Window
from tests.clock import FakeClock, max_in_window


async def _departures(pacer: Pacer, clock: FakeClock, workers: int, total: int) -> list[float]:
    times: list[float] = []

    async def worker() -> None:
        while len(times) < total:
            await pacer.acquire()
            times.append(clock.time())
            await clock.sleep(0.0)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return times[:total]


@pytest.mark.parametrize("rate", [4, 8, 50])
async def test_no_one_second_window_exceeds_the_rate(rate: int) -> None:
    """Eight dispatchers with late wake-ups never put more than `rate` requests in a second."""
    clock = FakeClock(overshoot=0.004)
    pacer = Pacer(rate, clock=clock.time, sleep=clock.sleep)
    times = await _departures(pacer, clock, workers=8, total=rate * 30)
    assert max_in_window(times) <= rate


async def test_sustains_at_least_97_percent_of_the_rate() -> None:
    """Over 60 s of work the pacer achieves >= 97% of the limit."""
    clock = FakeClock(overshoot=0.002)
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    times = await _departures(pacer, clock, workers=8, total=241)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= 0.97 * 4


@pytest.mark.parametrize("rate", [4, 200])
async def test_late_wake_ups_do_not_add_up(rate: int) -> None:
    """Wake-ups up to 1 ms late (the event loop's timer granularity) cost at most one per
    window (no jitter floor here, to see the grid alone): >= 99% of the limit at 4/s and at
    200/s (plain even spacing: 90% at 200/s)."""
    clock = FakeClock(overshoot=0.001)
    pacer = Pacer(rate, jitter_floor=0.0, clock=clock.time, sleep=clock.sleep)
    times = await _departures(pacer, clock, workers=8, total=rate * 60 + 1)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= 0.99 * rate
    assert max_in_window(times) <= rate


async def test_departures_stay_evenly_spaced() -> None:
    """Making up late wake-ups must not bunch requests: every gap stays near 1/rate."""
    clock = FakeClock(overshoot=0.003)
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    times = await _departures(pacer, clock, workers=8, total=200)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.24 and max(gaps) <= 0.26


async def test_windows_count_from_when_requests_really_left() -> None:
    """Every fifth request waits 40 ms for a new connection before it leaves. The server
    counts arrivals, so the pacer counts from the real send time the client reports."""
    clock = FakeClock(overshoot=0.001)
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    arrivals: list[float] = []
    for i in range(100):
        slot = await pacer.acquire()
        late = 0.040 if i % 5 == 0 else 0.0
        slot.sent(clock.time() + late)
        arrivals.append(clock.time() + late)
    assert max_in_window(arrivals) <= 4


@pytest.mark.parametrize(("rate", "most"), [(4.5, 4), (1.5, 1), (0.5, 1)])
async def test_fractional_rates_never_exceed_the_rate_in_a_second(rate: float, most: int) -> None:
    """A strict server counts whole requests: 4.5/s allows 4 in a second, 0.5/s one in two."""
    clock = FakeClock(overshoot=0.002)
    pacer = Pacer(rate, clock=clock.time, sleep=clock.sleep)
    times = await _departures(pacer, clock, workers=4, total=60)
    assert max_in_window(times) <= most
    if rate < 1:
        assert max_in_window(times, window=1 / rate) <= 1


async def test_a_bursting_leaky_bucket_would_exceed_the_window() -> None:
    """The reason for the design: AsyncLimiter(4, 1) lets more than 4 through in one second."""
    limiter = AsyncLimiter(4, 1)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    start = loop.time()
    while loop.time() - start < 1.1:
        async with limiter:
            times.append(loop.time())
    assert max_in_window(times) > 4


async def test_pause_holds_every_caller() -> None:
    """After pause(3) no one leaves for 3 seconds, whoever got the 429."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    await pacer.acquire()
    pacer.pause(3.0)
    await asyncio.gather(pacer.acquire(), pacer.acquire())
    assert clock.time() >= 3.0


async def test_pause_never_shortens_an_existing_pause() -> None:
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    pacer.pause(5.0)
    pacer.pause(1.0)
    await pacer.acquire()
    assert clock.time() >= 5.0


def test_repeated_429s_halve_the_rate_once_per_second_and_successes_win_it_back() -> None:
    """AIMD: one 429 alone keeps the rate; repeats halve it; successes restore it to the limit."""
    clock = FakeClock()
    pacer = Pacer(8, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(base=1.0, cap=60.0, rand=lambda low, high: high)
    pacer.throttled(backoff, None)
    assert pacer.rate == 8
    pacer.throttled(backoff, None)
    pacer.throttled(backoff, None)  # same second: one burst counts once
    assert pacer.rate == 4
    clock.now += 1.5
    pacer.throttled(backoff, None)
    assert pacer.rate == 2
    for _ in range(200):
        pacer.on_success()
    assert pacer.rate == 8


def test_queue_pressure_slows_down_before_the_queue_is_full() -> None:
    """X-QueueSize-Remaining under 20% of the limit scales the rate down; room restores it."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    pacer.observe_queue(40_000, 50_000)
    assert pacer.rate == 4
    pacer.observe_queue(5_000, 50_000)
    assert pacer.rate == pytest.approx(2.0)
    pacer.observe_queue(0, None)  # a 429 carries only the remaining count
    assert pacer.rate == pytest.approx(4 / 64)
    pacer.observe_queue(None, None)  # no header: no change
    assert pacer.rate == pytest.approx(4 / 64)
    pacer.observe_queue(45_000, 50_000)
    assert pacer.rate == 4


def test_pauses_grow_while_429s_continue_but_not_for_requests_already_in_flight() -> None:
    """One step per pause: in-flight answers reuse it, a 429 after the pause doubles it, and a
    success ends the streak."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(base=1.0, cap=60.0, rand=lambda low, high: high)
    assert pacer.throttled(backoff, None) == 1.0
    assert pacer.throttled(backoff, None) == 1.0  # another in-flight request, same pause
    clock.now += 1.5
    assert pacer.throttled(backoff, None) == 2.0
    clock.now += 2.5
    assert pacer.throttled(backoff, 10.0) == 10.0  # Retry-After is a floor
    pacer.on_success()
    clock.now += 20
    assert pacer.throttled(backoff, None) == 1.0


def test_a_rate_429_with_room_in_the_queue_pauses_one_interval_then_backs_off() -> None:
    """X-QueueSize-Remaining > 0 says the 429 was the rate, not a full queue: the first one
    costs one interval (and widens the margin); if they go on, the usual backoff steps follow.
    A full queue (0) backs off at once."""
    clock = FakeClock()
    pacer = Pacer(4, jitter_floor=0.0, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(base=1.0, cap=60.0, rand=lambda low, high: high)
    assert pacer.throttled(backoff, None, queue_remaining=40_000) == pytest.approx(1.01 / 4)
    clock.now += 0.3
    assert pacer.throttled(backoff, None, queue_remaining=40_000) == 2.0  # still 429: step 2
    pacer.on_success()
    clock.now += 20
    assert pacer.throttled(backoff, None, queue_remaining=0) == 1.0
    pacer.on_success()
    clock.now += 20
    assert pacer.throttled(backoff, 3.0, queue_remaining=40_000) == 3.0  # Retry-After rules


async def test_no_burst_after_an_idle_spell() -> None:
    """Nothing to send for a while is not lateness to make up: the first requests after an
    idle spell (or the very first ones) are evenly spaced, not closer."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    first = await _departures(pacer, clock, workers=2, total=3)
    await clock.sleep(5.0)
    after = await _departures(pacer, clock, workers=2, total=3)
    for times in (first, after):
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.25


async def test_429s_soon_after_each_other_widen_the_margin_and_a_quiet_spell_narrows_it() -> None:
    """At 4/s a 429 costs more than a wider margin would unless 429s are over 100 s apart:
    each separate one doubles the margin (0.5% -> 1% -> 2%, at most 4%), the in-flight 429s of
    one episode count once, and once 429s stop the margin halves back to 0.5%."""
    clock = FakeClock()
    pacer = Pacer(4, jitter_floor=0.0, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(base=0.5, cap=1.0, rand=lambda low, high: high)  # pauses over by then

    async def span_of_five() -> float:
        await clock.sleep(10.0)  # the AIMD cut and the pause are long past
        for _ in range(51):
            pacer.on_success()
        times = await _departures(pacer, clock, workers=1, total=5)
        return times[-1] - times[0]

    assert await span_of_five() == pytest.approx(1.005, abs=1e-6)
    pacer.throttled(backoff, None)
    pacer.throttled(backoff, None)  # the same episode
    assert await span_of_five() == pytest.approx(1.01, abs=1e-6)
    for _ in range(5):
        await clock.sleep(2.0)
        pacer.throttled(backoff, None)
    assert await span_of_five() == pytest.approx(1.04, abs=1e-6)
    margins = []
    for _ in range(6):
        await clock.sleep(30.0)
        pacer.on_success()
        margins.append(pacer.margin)
    # 4% halves after 25 s quiet, 2% after 50 s more, 1% after 100 s more
    assert margins == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.01, 0.01])
    await clock.sleep(40.0)
    pacer.on_success()
    assert pacer.margin == pytest.approx(0.005)
    assert await span_of_five() == pytest.approx(1.005, abs=1e-6)


async def test_rare_429s_at_a_high_rate_cost_less_than_a_wider_margin_would() -> None:
    """At 200/s a 429 costs two of 200 departures a second: doubling the margin for one 429
    every 5 s would cost 2.5 times more, so it stays. Once 429s have cost more than the margin
    did (here, ten in one burst), the next one doubles it."""
    clock = FakeClock()
    pacer = Pacer(200, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(base=1.0, cap=60.0, rand=lambda low, high: high)

    def rate_429() -> None:  # the import queue has room
        pacer.throttled(backoff, None, queue_remaining=40_000)

    await pacer.acquire()
    for _ in range(4):
        await clock.sleep(5.0)
        rate_429()
    assert pacer.margin == 0.005
    await clock.sleep(1.5)
    for _ in range(10):
        rate_429()
    assert pacer.margin == 0.005  # decided at the first 429 of the burst: 10 < 21.5 spent
    await clock.sleep(1.5)
    rate_429()  # 15 429s cost 30 departures; the margin spent 23
    assert pacer.margin == 0.01


def test_rate_429s_cut_the_rate_only_once_the_margin_is_at_its_widest() -> None:
    """A 429 with room in the import queue is jitter, answered with margin; when they go on
    with the margin at 4%, the account's limit must be lower than configured: AIMD cuts."""
    clock = FakeClock()
    pacer = Pacer(8, clock=clock.time, sleep=clock.sleep)
    backoff = Backoff(base=1.0, cap=60.0, rand=lambda low, high: high)
    rates = []
    for _ in range(5):
        clock.now += 1.5
        pacer.throttled(backoff, None, queue_remaining=40_000)
        pacer.on_success()
        rates.append((pacer.margin, pacer.rate))
    assert rates[:3] == [(0.01, 8), (0.02, 8), (0.04, 8)]
    assert rates[3][1] < 8 and rates[4][1] < rates[3][1]


async def test_a_late_departure_and_catch_up_keep_the_jitter_floor_in_every_window() -> None:
    """Every seventh wake-up is 60 ms late (a busy event loop) and the grid catches up after
    it; still no five departures fall within 1 s + the 20 ms jitter floor, so arrivals
    delayed by up to 20 ms more than their neighbours never make five in a second (the
    lateness also widens the slack: it is measured)."""
    clock = FakeClock(overshoot=0.001)
    wakes = itertools.count()

    async def busy_sleep(seconds: float) -> None:
        await clock.sleep(seconds + (0.06 if next(wakes) % 7 == 6 else 0.0))

    pacer = Pacer(4, clock=clock.time, sleep=busy_sleep)
    times = await _departures(pacer, clock, workers=8, total=241)
    assert max_in_window(times, window=1.0199) <= 4
    assert pacer.slack > 0.020


async def test_the_slack_grows_with_the_measured_network_jitter() -> None:
    """Answers on a connection whose delay varies by up to 50 ms widen the slack to cover it
    (90th percentile); a wild variation is capped; the widest slack is remembered for the run
    report. The server's own answer time does not count."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    assert pacer.slack == pytest.approx(0.020)
    for i in range(40):
        slot = await pacer.acquire(until_sent=True)
        slot.sent(clock.now)
        clock.now += 0.3 + 1.7 * (i % 2)  # answers after 0.3 to 2 s: the server's own work
        slot.done(jitter=0.01 if i % 8 else 0.0)
    assert pacer.slack == pytest.approx(0.020)
    for i in range(40):
        slot = await pacer.acquire()
        slot.done(jitter=0.05 if i % 2 else 0.01)
    assert pacer.slack == pytest.approx(0.0025 + 0.05)
    times = await _departures(pacer, clock, workers=1, total=5)
    assert times[-1] - times[0] >= 1.05
    for _ in range(64):
        slot = await pacer.acquire()
        slot.done(jitter=0.5)
    assert pacer.slack == pytest.approx(0.0025 + 0.06)
    assert pacer.largest_slack == pytest.approx(0.0625)


async def test_a_slot_not_yet_sent_counts_as_leaving_now() -> None:
    """One request is stuck in connect (a SYN retransmit) from t=0 until it is written at
    t=2.5: until then it holds the window as if it left now, so with it no five arrivals ever
    fall inside one second (plus the floor): counting it from its grant let a fifth in."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    stuck = await pacer.acquire(until_sent=True)
    written = 2.5

    async def sleep(seconds: float) -> None:
        if not stuck.confirmed and clock.now + seconds >= written:
            clock.now = written
            stuck.sent(written)
            await asyncio.sleep(0)
        else:
            await clock.sleep(seconds)

    pacer._sleep = sleep
    times = await _departures(pacer, clock, workers=4, total=12)
    assert stuck.at == written
    assert max_in_window([*times, written], window=1.0199) <= 4
    assert max_in_window([t for t in times if t < written], window=1.0199) <= 3


async def test_a_slot_that_never_reports_counts_from_when_its_request_ended() -> None:
    """A push that failed before writing anything (or a pusher that does not report) settles
    its slot at ``done()``: the pacer is not held forever."""
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.time, sleep=clock.sleep)
    slot = await pacer.acquire(until_sent=True)
    clock.now += 0.5
    slot.done()
    assert slot.confirmed and slot.at == 0.5
    times = await _departures(pacer, clock, workers=2, total=8)
    assert max_in_window([0.5, *times], window=1.0199) <= 4


def test_the_first_departure_starts_the_grid_where_it_left() -> None:
    """Nothing was due before the first departure: the next one is due an interval after it."""
    grid = _Grid()
    assert grid.ready_at(0.25) == -float("inf")
    grid.depart(3.0, 0.0, 0.25)
    assert grid.due == 3.25


def test_a_late_departure_is_made_up_for_by_the_next() -> None:
    """Lateness up to CATCH_UP keeps the grid: the next departure is due an interval after
    this one was *due*, not after it left."""
    grid = _Grid()
    grid.depart(0.0, 0.0, 0.25)
    grid.depart(0.25 + 0.06, 0.0, 0.25)  # 60 ms late
    assert grid.due == pytest.approx(0.5)


def test_lateness_beyond_catch_up_restarts_the_grid() -> None:
    """An idle spell is not lateness to make up: the grid restarts at the departure."""
    grid = _Grid()
    grid.depart(0.0, 0.0, 0.25)
    now = 0.25 + CATCH_UP + 0.01
    grid.depart(now, 0.0, 0.25)
    assert grid.due == pytest.approx(now + 0.25)


def test_a_pause_moves_the_place_on_the_grid() -> None:
    """After a pause the departure's place is the pause's end, so no burst makes it up."""
    grid = _Grid()
    grid.depart(0.0, 0.0, 0.25)
    grid.depart(2.05, 2.0, 0.25)
    assert grid.due == pytest.approx(2.25)


def test_catching_up_never_spaces_two_closer_than_half_an_interval() -> None:
    """At 10/s a departure 80 ms late makes the next one due 20 ms after it: it waits 50."""
    grid = _Grid()
    grid.depart(0.0, 0.0, 0.1)
    grid.depart(0.18, 0.0, 0.1)
    assert grid.due == pytest.approx(0.2)
    assert grid.ready_at(0.1) == pytest.approx(0.23)


def _window(*slots: Slot, span: float = 1.0) -> _Window:
    window = _Window()
    for slot in slots:
        window.add(slot, slot.at, span)
    return window


def test_fewer_than_n_departures_never_hold_the_next() -> None:
    assert _window(Slot(0.0), Slot(0.25)).ready_at(0.3, 3, 1.0) == -float("inf")


def test_the_next_departure_waits_a_span_after_the_nth_latest() -> None:
    """Four departures at 4/s: the fifth waits until the first is a span old."""
    window = _window(Slot(0.0), Slot(0.25), Slot(0.5), Slot(0.75), span=1.02)
    assert window.ready_at(0.8, 4, 1.02) == 1.02
    assert window.ready_at(0.8, 3, 1.02) == 0.25 + 1.02


def test_a_departure_reported_late_counts_from_when_it_left() -> None:
    first = Slot(0.0)
    window = _window(first, Slot(0.25))
    first.sent(0.4)
    assert window.ready_at(0.5, 2, 1.0) == 1.25


def test_an_unconfirmed_slot_counts_as_leaving_now() -> None:
    """A request still connecting holds the window forward, whatever its grant time."""
    window = _window(Slot(0.0, confirmed=False), Slot(0.25))
    assert window.ready_at(0.5, 2, 1.0) == 1.25
    assert window.ready_at(3.0, 2, 1.0) == 1.25  # ... as long as it is the older one
    assert window.ready_at(3.0, 1, 1.0) == 4.0


def test_old_departures_are_forgotten_but_never_an_unconfirmed_one() -> None:
    assert _window(Slot(0.0), Slot(5.0)).ready_at(5.1, 2, 1.0) == -float("inf")
    assert _window(Slot(0.0, confirmed=False), Slot(5.0)).ready_at(5.1, 2, 1.0) == 6.0


def test_a_pause_is_extended_never_shortened() -> None:
    pauses = _Pauses()
    pauses.hold(5.0)
    pauses.hold(1.0)
    assert pauses.until == 5.0
    pauses.hold(7.0)
    assert pauses.until == 7.0


def test_429s_for_requests_in_flight_during_a_pause_reuse_its_step() -> None:
    pauses = _Pauses()
    assert pauses.count_429(0.0) == 1
    pauses.hold(1.0)
    assert pauses.count_429(0.5) == 1  # sent before the pause: same step
    assert pauses.count_429(1.0) == 2  # sent after it: the next step
    pauses.end_streak()
    assert pauses.count_429(0.5) == 0  # in flight, after a success: no step yet
    assert pauses.count_429(2.0) == 1


class _Permit:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.asked = 0

    async def may_send(self) -> None:
        self.asked += 1
        if not self.answers.pop(0):
            raise StateError("run lock lost")


class _Slot:
    def __init__(self) -> None:
        self.done_calls = 0

    def sent(self, at: float) -> None:
        pass

    def done(self, *, jitter: float | None = None) -> None:
        self.done_calls += 1


class _Pacer(Pacer):
    def __init__(self) -> None:
        super().__init__(4)
        self.slots: list[_Slot] = []

    async def acquire(self, *, until_sent: bool = False) -> _Slot:
        self.slots.append(_Slot())
        return self.slots[-1]


async def test_a_departure_asks_the_permit_before_and_after_its_slot() -> None:
    """A granted departure was allowed twice: before the wait for a slot and after it."""
    pacer, permit = _Pacer(), _Permit([True, True])
    slot = await PermittedPacer(pacer, permit).acquire(until_sent=True)
    assert permit.asked == 2 and slot is pacer.slots[0] and slot.done_calls == 0


async def test_a_permit_withdrawn_during_the_wait_gives_the_slot_back() -> None:
    """The lease ran out while the pacer waited: nothing leaves and the slot is released."""
    pacer, permit = _Pacer(), _Permit([True, False])
    with pytest.raises(StateError):
        await PermittedPacer(pacer, permit).acquire(until_sent=True)
    assert pacer.slots[0].done_calls == 1


async def test_no_slot_is_taken_without_the_permit() -> None:
    """A lost lock refuses before the pacer is even asked."""
    pacer = _Pacer()
    with pytest.raises(StateError):
        await PermittedPacer(pacer, _Permit([False])).acquire()
    assert pacer.slots == []


def _replay_script() -> Any:
    """``bench/pacing_replay.py``, the scenario replayed in each tree to compare departures."""
    path = Path(__file__).resolve().parents[2] / "bench" / "pacing_replay.py"
    name = "bench_pacing_replay"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split()[2:])


async def test_the_pacing_replay_keeps_the_limit_and_reacts_to_each_pushback() -> None:
    """The replay's scenario (8 workers at 4/s, late wake-ups, a late departure, 429s with a
    Retry-After, for a full queue and with room in it, jitter samples, queue pressure): no
    second holds more than 4 departures; the Retry-After is the pause's floor and nobody leaves
    during it; the late departure counts from when it left; two 429s for a full queue halve the
    rate and successes win it back; rate 429s widen the margin; the measured jitter widens the
    slack; queue pressure lowers the rate."""
    script = _replay_script()
    lines: list[str] = await script.replay()
    departures = {int(line.split()[1]): _fields(line) for line in lines
                  if line.startswith("departure ")}
    throttles = {int(line.split()[1]): _fields(line) for line in lines
                 if line.startswith("429 ")}
    summary = _fields("summary - " + lines[-1].split(" ", 1)[1])
    assert sorted(departures) == list(range(240)) and set(throttles) == {40, 80, 84, 120, 121,
                                                                          130}
    left = sorted(float(d["left"]) for d in departures.values())
    assert max_in_window(left) <= 4 and summary["most_in_any_second"] == "4"

    retry_after = throttles[40]
    assert float(retry_after["pause"]) >= 2.0
    paused_from = float(retry_after["at"])
    assert not [t for t in left if paused_from < t < paused_from + 2.0]

    late = departures[20]
    assert float(late["left"]) == pytest.approx(float(late["granted"]) + 0.3)

    assert float(throttles[80]["rate"]) == 4.0 and float(throttles[84]["rate"]) == 2.0
    assert float(summary["rate"]) == 4.0  # won back
    margins = [float(throttles[n]["margin"]) for n in (80, 84, 120, 121, 130)]
    assert margins == sorted(margins) and margins[-1] > float(departures[0]["margin"])
    assert max(margins) <= 0.04

    assert float(departures[0]["slack"]) == pytest.approx(0.02)  # the floor
    assert float(departures[175]["slack"]) > float(departures[140]["slack"])
    assert float(departures[199]["rate"]) < 4.0  # the queue nearly full


@pytest.mark.parametrize("seed", range(0, 100, 5))
async def test_drawn_replay_scenarios_never_put_more_than_the_limit_in_a_second(
    seed: int,
) -> None:
    """Whatever a drawn scenario does (rate, workers, lateness, late connects, 429s), no
    sliding second holds more than ``floor(rate)`` departures."""
    script = _replay_script()
    scenario = script.Scenario.drawn(seed, 240)
    lines: list[str] = await script.replay(240, scenario)
    assert int(_fields("summary - " + lines[-1].split(" ", 1)[1])["most_in_any_second"]) \
        <= math.floor(scenario.rate)
