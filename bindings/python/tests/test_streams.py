"""Streams: start, stop, update, get, live list, search, stats, raids."""

from __future__ import annotations

import pytest

from streamhub import (Conflict, Forbidden, InvalidArgument, NotFound, Raid,
                       Stream, StreamStats, Unauthenticated)


@pytest.fixture(scope="module")
def caster(make_user):
    return make_user("caster")


def test_stream_life_cycle(hub, caster, bob) -> None:
    s = hub.start_stream(caster.user.id, "Speedrun \u2728 any%", "games")
    assert isinstance(s, Stream)
    assert s.is_live and s.status == "LIVE" and s.ended_at is None
    assert s.broadcaster.id == caster.user.id
    assert hub.get_stream(s.id) == s
    with pytest.raises(Conflict):
        hub.start_stream(caster.user.id, "twice")
    u = hub.update_stream(caster.user.id, s.id, title="New title")
    assert u.title == "New title" and u.category == "games"
    u = hub.update_stream(caster.user.id, s.id, category="")
    assert u.category is None
    with pytest.raises(Forbidden):
        hub.update_stream(bob.user.id, s.id, title="mine")
    live = hub.live_streams(first=100)
    assert s.id in [x.id for x in live]
    assert s.id in [x.id for x in hub.search_streams("new title")]
    assert hub.search_streams("   ").items == []
    with pytest.raises(Forbidden):
        hub.stop_stream(bob.user.id, s.id)
    ended = hub.stop_stream(caster.user.id, s.id)
    assert not ended.is_live and ended.ended_at
    with pytest.raises(Conflict):
        hub.stop_stream(caster.user.id, s.id)
    assert s.id not in [x.id for x in hub.live_streams(first=100)]


def test_titles_at_the_limits(hub, make_user) -> None:
    u = make_user("limits")
    with pytest.raises(InvalidArgument):
        hub.start_stream(u.user.id, "")
    with pytest.raises(InvalidArgument):
        hub.start_stream(u.user.id, "\u00e9" * 141)         # max + 1
    with pytest.raises(InvalidArgument):
        hub.start_stream(u.user.id, b"\xc3\x28".decode("latin-1")
                         .encode("latin-1").decode("utf-8", "surrogate"
                                                   "escape"))
    with pytest.raises(InvalidArgument):
        hub.start_stream(u.user.id, "ok", "c" * 65)
    s = hub.start_stream(u.user.id, "\u00e9" * 140, "c" * 64)  # max
    assert len(s.title) == 140
    hub.stop_stream(u.user.id, s.id)


def test_stream_errors(hub, alice) -> None:
    with pytest.raises(NotFound):
        hub.get_stream("no-such-stream")
    with pytest.raises(Unauthenticated):
        hub.start_stream(None, "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        hub.live_streams(first=0)
    with pytest.raises(InvalidArgument):
        hub.live_streams(after="garbage")
    with pytest.raises(InvalidArgument):
        hub.search_streams("q" * 257)
    with pytest.raises(NotFound):
        hub.stream_stats("no-such-stream")


def test_viewers_stats_and_raid(hub, make_user, bob) -> None:
    u = make_user("raider")
    s = hub.start_stream(u.user.id, "raid source", "irl")
    hub.set_viewers(s.id, 42)
    assert hub.get_stream(s.id).viewer_count == 42
    with pytest.raises(InvalidArgument):
        hub.set_viewers(s.id, -1)
    assert hub.flush_viewers() >= 0
    st = hub.stream_stats(s.id)
    assert isinstance(st, StreamStats) and st.peak_viewers == 42
    with pytest.raises(Forbidden):
        hub.start_raid(bob.user.id, s.id, u.user.id)
    with pytest.raises(InvalidArgument):
        hub.start_raid(u.user.id, s.id, u.user.id)
    r = hub.start_raid(u.user.id, s.id, bob.user.id)
    assert isinstance(r, Raid)
    assert r.from_.id == s.id and r.to.id == bob.user.id
    assert r.viewer_count == 42
    hub.stop_stream(u.user.id, s.id)
    with pytest.raises(Conflict):
        hub.start_raid(u.user.id, s.id, bob.user.id)
