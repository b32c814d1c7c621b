"""Subscriptions: iteration, callbacks, recovery, drops, ends."""

from __future__ import annotations

import threading

import pytest

from streamhub import (Busy, Event, Hub, InvalidArgument, Position,
                       TooLarge, hub as hubmod)
from conftest import hub_kwargs


@pytest.fixture()
def h():
    with Hub(**hub_kwargs()) as x:
        yield x


def test_publish_and_iterate(h) -> None:
    with h.subscribe("app:game") as sub:
        assert sub.position.offset == 0 and sub.position.epoch
        assert h.publish("app:game", "app.score", {"n": 1, "s": "\u00e9"}) \
            == 1
        h.publish("app:game", "app.score", raw='[1, "two", null]')
        ev = next(sub)
        assert isinstance(ev, Event)
        assert (ev.channel, ev.offset, ev.type) == ("app:game", 1,
                                                    "app.score")
        assert ev.data == {"n": 1, "s": "\u00e9"} and ev.time_ms > 0
        assert next(sub).data == [1, "two", None]
        assert sub.get(timeout=0.05) is None
        assert sub.last_position == Position(ev.epoch, 2)
    assert not sub.active
    assert sub.get(0) is None
    with pytest.raises(StopIteration):
        next(sub)
    sub.close()                                  # idempotent


def test_recovery_delivers_exactly_the_missed_events(h) -> None:
    sub = h.subscribe("app:rec")
    for i in range(3):
        h.publish("app:rec", "app.n", i)
    seen = [next(sub) for _ in range(3)]
    last = seen[-1].position
    sub.close()
    for i in range(3, 8):
        h.publish("app:rec", "app.n", i)
    sub2 = h.subscribe("app:rec", since=last)
    assert sub2.recovered
    assert sub2.position.offset == 8
    got = sub2.drain(timeout=0.5)
    assert [e.data for e in got] == [3, 4, 5, 6, 7]
    assert [e.offset for e in got] == [4, 5, 6, 7, 8]
    h.publish("app:rec", "app.n", 8)              # then live, no duplicate
    assert [e.data for e in sub2.drain(timeout=0.5)] == [8]
    sub2.close()
    # A tuple works as well; nothing missed is still "recovered".
    with h.subscribe("app:rec", since=(last.epoch, 9)) as s3:
        assert s3.recovered and s3.get(0.05) is None


def test_recovery_refused_for_foreign_epoch_or_future_offset(h) -> None:
    h.publish("app:r2", "app.n", 1)
    with h.subscribe("app:r2", since=("not-the-epoch", 0)) as s:
        assert not s.recovered and s.get(0.05) is None
    pos = h.channel_position("app:r2")
    with h.subscribe("app:r2", since=(pos.epoch, 99)) as s:
        assert not s.recovered
    with pytest.raises(InvalidArgument):
        h.subscribe("app:r2", since=("e" * 40, 0))    # epoch over 39 bytes


def test_recovery_beyond_history_is_not_recovered() -> None:
    with Hub(**hub_kwargs(bus_history_size=2)) as h:
        pos = h.channel_position("app:short")
        for i in range(5):
            h.publish("app:short", "app.n", i)
        with h.subscribe("app:short", since=pos) as s:
            assert not s.recovered


def test_callback_style(h) -> None:
    got = []
    sub = h.subscribe("app:cb", callback=got.append)
    h.publish("app:cb", "app.x", "a")
    h.publish("app:cb", "app.x", "b")
    for _ in range(50):
        if len(got) == 2:
            break
        h.poll(0.1)
    assert [e.data for e in got] == ["a", "b"]
    sub.close()
    h.publish("app:cb", "app.x", "c")
    h.poll(0.1)
    assert len(got) == 2


def test_callback_exception_surfaces_from_poll(h) -> None:
    def boom(ev: Event) -> None:
        raise KeyError("from the callback")
    sub = h.subscribe("app:boom", callback=boom)
    h.publish("app:boom", "app.x", 1)
    with pytest.raises(KeyError):
        for _ in range(50):
            h.poll(0.1)
    sub.close()


def test_callbacks_cannot_reenter_poll_or_close(h) -> None:
    errors = []

    def bad(ev: Event) -> None:
        for fn in (lambda: h.poll(0), h.close):
            try:
                fn()
            except RuntimeError as exc:
                errors.append(exc)
        sub.close()        # allowed: ends after this callback
    sub = h.subscribe("app:re", callback=bad)
    h.publish("app:re", "app.x", 1)
    h.publish("app:re", "app.x", 2)
    for _ in range(20):
        h.poll(0.05)
        if not sub.active:
            break
    assert len(errors) == 2
    assert not sub.active
    assert not h.closed


def test_events_only_on_the_polling_thread(h) -> None:
    threads = set()
    got = []
    sub = h.subscribe("app:thr", callback=lambda e: (
        threads.add(threading.get_ident()), got.append(e)))
    pubs = [threading.Thread(target=h.publish, args=("app:thr", "app.x", i))
            for i in range(8)]
    for t in pubs:
        t.start()
    for t in pubs:
        t.join()
    for _ in range(100):
        if len(got) == 8:
            break
        h.poll(0.05)
    assert len(got) == 8
    assert threads == {threading.get_ident()}
    sub.close()


def test_hub_close_ends_iteration_and_frees_registry() -> None:
    h = Hub(**hub_kwargs())
    sub = h.subscribe("live")
    assert sub._id in hubmod._registry
    h.close()
    assert not sub.active and sub.end_status == 13
    assert sub._id not in hubmod._registry
    assert list(sub) == []


def test_slow_subscriber_is_dropped_with_busy() -> None:
    with Hub(**hub_kwargs(bus_subscriber_queue=16)) as h:
        sub = h.subscribe("app:flood")
        for i in range(200):
            h.publish("app:flood", "app.n", i)
        got = []
        with pytest.raises(Busy):
            for ev in sub:
                got.append(ev)
        assert sub.dropped
        assert len(got) < 200
        if got:
            assert [e.data for e in got] == list(range(len(got)))
        # Recovery replays through the subscriber's queue, so a position
        # less than bus.subscriber-queue behind comes back in full.
        top = h.channel_position("app:flood")
        with h.subscribe("app:flood",
                         since=(top.epoch, top.offset - 10)) as again:
            assert again.recovered
            rest = again.drain(timeout=0.5)
            assert [e.data for e in rest] == list(range(190, 200))


@pytest.mark.parametrize("channel", [
    "", "nochannelkind", "app:", "app:bad name", "chat:x\u00e9",
    "app:" + "a" * 125, "user:\x01",
])
def test_bad_channels(h, channel) -> None:
    with pytest.raises(InvalidArgument):
        h.subscribe(channel)
    with pytest.raises(InvalidArgument):
        h.publish(channel, "app.x", 1)


def test_channel_name_at_its_maximum(h) -> None:
    name = "app:" + "a" * 124                      # SH_CHANNEL_MAX bytes
    assert len(name) == 128
    with h.subscribe(name) as s:
        h.publish(name, "app.x", 1)
        assert s.get(1).data == 1


@pytest.mark.parametrize("raw", ["", "{", "[1,]", "1 2", "nul\x00l",
                                 b"\"\xc3\x28\""])
def test_publish_refuses_bad_json(h, raw) -> None:
    with pytest.raises((InvalidArgument, ValueError)):
        h.publish("app:j", "app.x", raw=raw)


def test_publish_refuses_bad_types_and_oversize() -> None:
    with Hub(**hub_kwargs(ws_max_message_bytes=1024)) as h:
        for t in ["", "t" * 65, "bad type", "t\u00e9"]:
            with pytest.raises(InvalidArgument):
                h.publish("app:t", t, 1)
        h.publish("app:t", "t" * 64, 1)
        with pytest.raises(TooLarge) as ei:
            h.publish("app:t", "app.big", "x" * 2000)
        assert ei.value.name == "SH_ETOOBIG"


def test_dropped_python_reference_keeps_the_callback_alive(h) -> None:
    got = []
    h.subscribe("app:gc", callback=got.append)     # handle not kept
    import gc
    gc.collect()
    h.publish("app:gc", "app.x", 1)
    for _ in range(40):
        if got:
            break
        h.poll(0.05)
    assert [e.data for e in got] == [1]


def test_concurrent_calls_while_polling(h) -> None:
    uid = h.register("busy_caster", "busy@example.com", "password123")
    sid = h.start_stream(uid.user.id, "busy").id
    sub = h.subscribe("app:conc")
    errors = []

    def worker(k: int) -> None:
        try:
            for i in range(200):
                assert h.get_stream(sid).id == sid
                h.publish("app:conc", "app.n", k * 1000 + i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    got = []
    while len(got) < 1600:
        ev = sub.get(5)
        assert ev is not None, f"stalled at {len(got)}"
        got.append(ev)
    for t in ts:
        t.join()
    assert not errors
    assert [e.offset for e in got] == list(range(1, 1601))
    for k in range(8):                       # per-publisher order kept
        mine = [e.data for e in got if e.data // 1000 == k]
        assert mine == sorted(mine) and len(mine) == 200
    sub.close()
