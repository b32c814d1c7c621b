"""No leak over 10,000 calls: Python heap (tracemalloc) and process RSS.

Under ASan (STREAMHUB_TEST_SANITIZED=1) the RSS bound is lifted: its
quarantine keeps freed memory resident.  Each loop runs once to warm caches (SQLite's page cache, the bus history,
malloc arenas), then measures 10,000 more calls.  Bounds: under 64 KiB of
Python allocations kept and under 4 MiB of RSS growth, where a leak of one
small C object per call (>= 32 bytes) would be 10,000 * 32 = 320 KB on the
Python side or several MiB of RSS once handles (JSON, strings) leak.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Callable

import pytest

from streamhub import Hub, NotFound
from conftest import hub_kwargs

N = 10_000
PY_BOUND = 64 * 1024
RSS_BOUND = 4 * 1024 * 1024
# ASan holds freed memory in quarantine (hundreds of MiB), so RSS says
# nothing there; the sanitized run keeps the Python-side bound only.
if os.environ.get("STREAMHUB_TEST_SANITIZED") == "1":
    RSS_BOUND = 1 << 40


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn: Callable[[int], None]) -> tuple:
    for i in range(N):                      # warm-up
        fn(i)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    rss0 = rss()
    for i in range(N):
        fn(i)
    gc.collect()
    after = tracemalloc.take_snapshot()
    rss1 = rss()
    tracemalloc.stop()
    kept = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return kept, rss1 - rss0


@pytest.fixture(scope="module")
def lh():
    with Hub(**hub_kwargs(bus_history_size=100)) as h:
        u = h.register("leaky", "leaky@example.com", "password123")
        s = h.start_stream(u.user.id, "leak check")
        yield h, s.id


def test_get_stream_does_not_leak(lh) -> None:
    h, sid = lh
    kept, grown = measure(lambda i: h.get_stream(sid))
    print(f"get_stream x{N}: python {kept} B, rss {grown} B")
    assert kept < PY_BOUND and grown < RSS_BOUND


def test_failing_calls_do_not_leak(lh) -> None:
    h, _ = lh

    def miss(i: int) -> None:
        try:
            h.get_stream("missing")
        except NotFound:
            pass
    kept, grown = measure(miss)
    print(f"NotFound x{N}: python {kept} B, rss {grown} B")
    assert kept < PY_BOUND and grown < RSS_BOUND


def test_publish_and_receive_do_not_leak(lh) -> None:
    h, _ = lh
    sub = h.subscribe("app:leak")

    def pub(i: int) -> None:
        h.publish("app:leak", "app.n", {"i": i, "pad": "x" * 64})
        if i % 100 == 99:
            assert len(sub.drain(timeout=1.0)) >= 1
    kept, grown = measure(pub)
    sub.close()
    print(f"publish+receive x{N}: python {kept} B, rss {grown} B")
    assert kept < PY_BOUND and grown < RSS_BOUND


def test_subscribe_unsubscribe_does_not_leak(lh) -> None:
    h, _ = lh

    def cycle(i: int) -> None:
        h.subscribe("app:churn").close()
    kept, grown = measure(cycle)
    print(f"subscribe/close x{N}: python {kept} B, rss {grown} B")
    assert kept < PY_BOUND and grown < RSS_BOUND
