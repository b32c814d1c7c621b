"""asyncio: async for over a subscription, waiting on the hub's fd."""

from __future__ import annotations

import asyncio

import pytest

from streamhub import Hub
from streamhub.aio import next_event
from conftest import hub_kwargs


def test_async_for_receives_events_without_busy_polling() -> None:
    async def main() -> None:
        with Hub(**hub_kwargs()) as h:
            polls = 0
            real_poll = h.poll

            def counting_poll(timeout: float = 0.0) -> int:
                nonlocal polls
                polls += 1
                assert timeout == 0, "the asyncio path never blocks"
                return real_poll(timeout)
            h.poll = counting_poll  # type: ignore[method-assign]
            sub = h.subscribe("app:aio")
            other = h.subscribe("app:aio2")

            async def producer() -> None:
                await asyncio.sleep(0.3)          # idle: no polling here
                for i in range(5):
                    h.publish("app:aio", "app.n", i)
                    h.publish("app:aio2", "app.n", -i)
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(producer())
            got = []
            async for ev in sub:
                got.append(ev.data)
                if len(got) == 5:
                    break
            await task
            assert got == [0, 1, 2, 3, 4]
            # Events of the other subscription were kept for it.
            others = [(await next_event(other, timeout=1)).data
                      for _ in range(5)]
            assert others == [0, -1, -2, -3, -4]
            # 0.3 s idle at 1 poll per wake-up: far below a busy loop.
            assert polls < 40, polls
            with pytest.raises(asyncio.TimeoutError):
                await next_event(sub, timeout=0.1)
            h.poll = real_poll  # type: ignore[method-assign]
            sub.close()
            assert await next_event(sub) is None
            other.close()

    asyncio.run(main())


def test_two_subscriptions_awaited_concurrently() -> None:
    async def main() -> None:
        with Hub(**hub_kwargs()) as h:
            a, b = h.subscribe("app:a"), h.subscribe("app:b")

            async def take(sub, n):
                out = []
                async for ev in sub:
                    out.append(ev.data)
                    if len(out) == n:
                        return out

            ta = asyncio.create_task(take(a, 3))
            tb = asyncio.create_task(take(b, 3))
            await asyncio.sleep(0.05)
            for i in range(3):
                h.publish("app:a", "app.n", i)
                h.publish("app:b", "app.n", 10 + i)
            ra, rb = await asyncio.wait_for(asyncio.gather(ta, tb), 5)
            assert ra == [0, 1, 2] and rb == [10, 11, 12]
            a.close()
            b.close()

    asyncio.run(main())
