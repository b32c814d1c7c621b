"""asyncio support: `async for event in subscription`.

The hub's file descriptor (sh_hub_fd()) is readable while callbacks are
pending, so asyncio waits on it with loop.add_reader() and polls the hub
with a zero timeout when it fires: no thread, no busy polling.  One reader
per hub and loop serves every subscription iterated on that loop (asyncio
keeps one reader per fd), waking each waiter after a poll; the reader is
removed when nobody waits.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, AsyncIterator, Dict, Optional, Set, Tuple

if TYPE_CHECKING:
    from .hub import Hub, Subscription
    from .models import Event


class _HubReader:
    def __init__(self, hub: "Hub", loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.loop = loop
        self.fd = hub.fileno()
        self.waiters: Set["asyncio.Future[None]"] = set()
        self.reading = False

    def _on_readable(self) -> None:
        try:
            self.hub.poll(0)
        except BaseException as exc:  # noqa: BLE001 - hand to the waiters
            for w in list(self.waiters):
                if not w.done():
                    w.set_exception(exc)
        else:
            for w in list(self.waiters):
                if not w.done():
                    w.set_result(None)
        self.waiters.clear()
        self._update()

    def _update(self) -> None:
        if self.waiters and not self.reading:
            self.loop.add_reader(self.fd, self._on_readable)
            self.reading = True
        elif not self.waiters and self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    async def wait(self) -> None:
        fut: "asyncio.Future[None]" = self.loop.create_future()
        self.waiters.add(fut)
        self._update()
        try:
            await fut
        finally:
            self.waiters.discard(fut)
            self._update()


_readers: Dict[Tuple[int, int], _HubReader] = {}


def _reader(hub: "Hub") -> _HubReader:
    loop = asyncio.get_running_loop()
    key = (id(hub), id(loop))
    r = _readers.get(key)
    if r is None or r.hub is not hub or r.loop is not loop:
        r = _HubReader(hub, loop)
        _readers[key] = r
    return r


async def next_event(sub: "Subscription",
                     timeout: Optional[float] = None) -> Optional["Event"]:
    """The next event of @sub, awaiting the hub's fd; None when the
    subscription ended.  asyncio.TimeoutError after @timeout seconds."""
    async def _wait() -> Optional["Event"]:
        while True:
            ev = sub.get(0)          # queued events, and a zero-wait poll
            if ev is not None:
                return ev
            if not sub.active:
                return None
            await _reader(sub.hub).wait()

    if timeout is None:
        return await _wait()
    return await asyncio.wait_for(_wait(), timeout)


async def aiter_subscription(sub: "Subscription") -> AsyncIterator["Event"]:
    """`async for ev in sub`: ends when the subscription ends."""
    while True:
        ev = await next_event(sub)
        if ev is None:
            return
        yield ev


def forget(hub: "Hub") -> None:
    """Drop the readers of @hub (called when it closes)."""
    for key in [k for k, r in _readers.items() if r.hub is hub]:
        r = _readers.pop(key)
        if r.reading:
            try:
                r.loop.remove_reader(r.fd)
            except Exception:  # noqa: BLE001 - loop already closed
                pass
