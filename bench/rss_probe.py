"""Where a process's resident memory lives: not a benchmark, imported by the memory benches.

Two views, sampled while the process runs:

* from outside, ``/proc/PID/smaps``: the resident kB of each mapping, grouped by what the
  mapping is (:func:`mappings`): glibc's main heap (``[heap]``, grown by ``brk``), glibc's
  per-thread arenas (anonymous, 64 MiB aligned), other anonymous mappings (pymalloc's 1 MiB
  arenas, blocks glibc gave its own ``mmap``, thread stacks), files by name (the SQLite state,
  its ``-shm`` and ``-wal``, the dead-letter file), shared libraries, the rest;
* from inside, when the process was started with :func:`inside_env`'s environment: every
  ``INTERVAL`` seconds a JSON line with glibc's ``mallinfo2`` (bytes in use and free in its
  arenas, bytes in its own ``mmap`` blocks), pymalloc's arenas (``_PyObject_DebugMallocStats``)
  and SQLite's bytes in use (``sqlite3_memory_used``, part of glibc's in use); with
  ``RSS_PROBE_TRACE=N`` also ``tracemalloc`` (N frames): the bytes it traces, and every 20 s
  its 25 largest tracebacks in a file beside (slow: for attribution, not for peaks); with
  ``RSS_PROBE_CENSUS=S``, every S seconds the event loop's thread counts the objects the
  garbage collector tracks by type (``.census`` beside: a pause of a second or so each time),
  written by a ``sitecustomize`` this module puts on the child's ``PYTHONPATH``.

:class:`Probe` keeps the sample taken at the peak of the total, and the largest value seen for
each group; :func:`inside_at_peak` the inside line nearest the peak.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

INTERVAL = 0.5
#: glibc's per-thread heaps are HEAP_MAX_SIZE-aligned (64 MiB on 64-bit)
_THREAD_HEAP_ALIGN = 64 * 2**20
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")

_SITECUSTOMIZE = '''
import ctypes, json, os, re, sys, tempfile, threading, time

def _probe(path, interval):
    libc = ctypes.CDLL(None)
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = Info
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    stats = ctypes.pythonapi._PyObject_DebugMallocStats
    stats.argtypes = [ctypes.c_void_p]
    try:
        import _sqlite3
        sqlite = ctypes.CDLL(_sqlite3.__file__)  # the libsqlite3 it links: the same instance
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    except (ImportError, OSError, AttributeError):
        sqlite = None
    scratch = tempfile.mktemp(prefix="pymalloc-")
    trace = int(os.environ.get("RSS_PROBE_TRACE", "0"))
    if trace:
        import tracemalloc
        tracemalloc.start(trace)
    started = last_snapshot = time.monotonic()
    with open(path, "a") as out:
        while True:
            info = libc.mallinfo2()
            fp = libc.fopen(scratch.encode(), b"w")
            stats(fp)
            libc.fclose(fp)
            with open(scratch) as fh:
                text = fh.read()
            arenas = re.search(r"# arenas allocated current\\s*=\\s*([\\d,]+)", text)
            used = re.search(r"# bytes in allocated blocks\\s*=\\s*([\\d,]+)", text)
            line = {"t": time.monotonic() - started, "wall": time.time(),
                    "glibc_system": info.arena,
                    "glibc_in_use": info.uordblks, "glibc_free": info.fordblks,
                    "glibc_top_releasable": info.keepcost, "glibc_mmap_blocks": info.hblkhd,
                    "pymalloc_arenas": int(arenas.group(1).replace(",", "")) if arenas else -1,
                    "pymalloc_in_blocks": int(used.group(1).replace(",", "")) if used else -1,
                    "threads": threading.active_count(),
                    "sqlite_in_use": sqlite.sqlite3_memory_used() if sqlite else -1}
            if trace:
                line["traced_in_use"] = tracemalloc.get_traced_memory()[0]
                if time.monotonic() - last_snapshot > 20:
                    last_snapshot = time.monotonic()
                    top = tracemalloc.take_snapshot().statistics("traceback")[:25]
                    with open(path + ".top", "a") as fh:
                        fh.write(f"--- t={line['t']:.1f} traced={line['traced_in_use']}\\n")
                        for stat in top:
                            fh.write(f"{stat.size / 2**20:8.2f} MB {stat.count:8} blocks "
                                     f"{' <- '.join(str(f) for f in stat.traceback)}\\n")
            out.write(json.dumps(line) + "\\n")
            out.flush()
            time.sleep(interval)

def _census(path):
    import collections, gc
    count, size = collections.Counter(), collections.Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        count[name] += 1
        size[name] += sys.getsizeof(obj)
    with open(path + ".census", "a") as fh:
        fh.write(json.dumps({"wall": time.time(), "count": dict(count.most_common(60)),
                             "size": dict(size.most_common(60))}) + "\\n")

def _censuses(path, every):
    import asyncio.base_events
    loops = []
    run_forever = asyncio.base_events.BaseEventLoop.run_forever
    def recorded(self):
        loops.append(self)
        return run_forever(self)
    asyncio.base_events.BaseEventLoop.run_forever = recorded
    def schedule():
        while True:
            time.sleep(every)
            for loop in loops[-1:]:
                if loop.is_running():
                    loop.call_soon_threadsafe(_census, path)
    threading.Thread(target=schedule, daemon=True, name="rss-census").start()

_path = os.environ.get("RSS_PROBE_INSIDE")
if _path and os.environ.get("RSS_PROBE_CENSUS"):
    _censuses(_path, float(os.environ["RSS_PROBE_CENSUS"]))
if _path:
    threading.Thread(target=_probe, args=(_path, float(os.environ["RSS_PROBE_INTERVAL"])),
                     daemon=True, name="rss-probe").start()
'''


def _group(start: int, end: int, name: str, state_dir: str | None) -> str:
    if name == "[heap]":
        return "glibc main heap [heap]"
    if name.startswith("[stack"):
        return "main stack"
    if name.startswith("/"):
        if ".so" in name or name.endswith(("python3", "python3.11", "python")):
            return "libraries"
        if state_dir and name.startswith(state_dir):
            return f"file {Path(name).name}"
        return "other files"
    if name.startswith("["):
        return "other"
    if start % _THREAD_HEAP_ALIGN == 0 and end - start <= _THREAD_HEAP_ALIGN:
        return "glibc thread arenas"
    return "anon mmap (pymalloc arenas, big blocks, stacks)"


def mappings(pid: int, state_dir: str | None = None) -> dict[str, int]:
    """Resident kB of ``pid`` by group of mapping, and ``total``. A glibc thread heap that
    grew past its first mapping's alignment is counted as anonymous (rare: 64 MiB each)."""
    groups: dict[str, int] = {}
    group = "other"
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            header = _HEADER.match(line)
            if header:
                group = _group(int(header.group(1), 16), int(header.group(2), 16),
                               header.group(3).strip(), state_dir)
            elif line.startswith("Rss:"):
                groups[group] = groups.get(group, 0) + int(line.split()[1])
    groups["total"] = sum(groups.values())
    return groups


class Probe:
    """Samples :func:`mappings` of one process every ``interval`` s until it exits."""

    def __init__(self, pid: int, state_dir: str | None = None, interval: float = 0.2) -> None:
        self.pid = pid
        self.state_dir = state_dir
        self.interval = interval
        self.started = time.monotonic()
        #: the sample with the largest total, and when it was taken (s after start)
        self.at_peak: dict[str, int] = {"total": 0}
        self.peak_time = 0.0
        #: the largest value seen of each group
        self.most: dict[str, int] = {}
        self.samples = 0

    async def run(self) -> None:
        while True:
            try:
                sample = mappings(self.pid, self.state_dir)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                return
            if not sample.get("total"):  # a zombie: exited
                return
            self.samples += 1
            if sample["total"] >= self.at_peak["total"]:
                self.at_peak, self.peak_time = sample, time.monotonic() - self.started
            for key, value in sample.items():
                self.most[key] = max(self.most.get(key, 0), value)
            await asyncio.sleep(self.interval)


def inside_env(folder: Path, interval: float = INTERVAL) -> tuple[dict[str, str], Path]:
    """Environment that makes a Python child write allocator lines to the returned file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    out = Path(tempfile.mkstemp(prefix="inside-", suffix=".jsonl", dir=folder)[1])
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "RSS_PROBE_INSIDE": str(out),
            "RSS_PROBE_INTERVAL": str(interval)}, out


def inside_at_peak(path: Path, peak_time: float) -> dict[str, Any]:
    """The inside line taken nearest ``peak_time`` (both clocks start within a few ms)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return {}
    return min(lines, key=lambda line: abs(line["t"] - peak_time))


def inside_most(path: Path) -> dict[str, Any]:
    """The largest value of each inside figure over the run."""
    most: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        for key, value in json.loads(line).items():
            most[key] = max(most.get(key, value), value)
    return most
