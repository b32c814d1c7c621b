"""Chat and moderation, and every chat refusal's exception class."""

from __future__ import annotations

import pytest

import streamhub as sh
from streamhub import ChatHistory, ChatMessage, ChatSettings, Hub
from conftest import PASSWORD, hub_kwargs, needs

pytestmark = needs("sh_chat_send")


@pytest.fixture(scope="module")
def room():
    """A hub of its own (tight rate limit), a live broadcaster, a viewer,
    a moderator."""
    with Hub(**hub_kwargs(chat_rate_limit=5,
                          chat_rate_window_seconds=60)) as h:
        cast = h.register("chatcaster", "cc@example.com", PASSWORD)
        view = h.register("chatviewer", "cv@example.com", PASSWORD)
        mod = h.register("chatmod", "cm@example.com", PASSWORD)
        s = h.start_stream(cast.user.id, "chat room")
        yield h, cast.user.id, view.user.id, mod.user.id, s.id


def test_send_history_delete(room) -> None:
    h, cast, view, mod, sid = room
    with h.subscribe(f"chat:{sid}") as sub:
        m = h.send_message(cast, sid, "hello\n\x00 w\u00f6rld \U0001F600")
        assert isinstance(m, ChatMessage)
        assert m.text == "hello w\u00f6rld \U0001F600"   # Cc removed
        assert m.author.id == cast and m.offset >= 1 and not m.deleted
        ev = sub.get(2)
        assert ev.type == "chat.message" and ev.data["id"] == m.id
        assert ev.offset == m.offset
        hist = h.chat_history(sid, last=10)
        assert isinstance(hist, ChatHistory)
        assert hist.items[-1].id == m.id
        h.delete_message(cast, m.id)
        h.delete_message(cast, m.id)                      # idempotent
        assert sub.get(2).type == "chat.message_deleted"
        last = h.chat_history(sid).items[-1]
        assert last.deleted and last.text == ""
    with pytest.raises(sh.Forbidden):
        h.delete_message(view, m.id)
    with pytest.raises(sh.NotFound):
        h.delete_message(cast, "no-such-message")
    with pytest.raises(sh.InvalidArgument):
        h.chat_history(sid, last=-1)
    with pytest.raises(sh.NotFound):
        h.chat_history("no-such-stream")


def test_chat_refusals_map_to_classes(room) -> None:
    h, cast, view, mod, sid = room
    cases = [
        (lambda: h.send_message(None, sid, "x"), sh.Unauthenticated),
        (lambda: h.send_message(view, "nope", "x"), sh.NotFound),
        (lambda: h.send_message(view, sid, b"bad \xc3\x28"), sh.BadUtf8),
        (lambda: h.send_message(view, sid, b"\xff"), sh.BadUtf8),
        (lambda: h.send_message(view, sid, ""), sh.Empty),
        (lambda: h.send_message(view, sid, "\x00\x01\n"), sh.Empty),
        (lambda: h.send_message(view, sid, "x" * 501), sh.TooLong),
    ]
    for call, cls in cases:
        with pytest.raises(cls) as ei:
            call()
        assert type(ei.value) is cls
        assert ei.value.message
    assert h.send_message(view, sid, "\u00e9" * 500).text == "\u00e9" * 500
    h.update_chat_settings(cast, cast, blocked_terms=["spoiler"])
    with pytest.raises(sh.BlockedTerm):
        h.send_message(view, sid, "big SPOI\u200bLER here")
    h.update_chat_settings(cast, cast, blocked_terms=[], followers_only=True)
    with pytest.raises(sh.FollowersOnly):
        h.send_message(view, sid, "hi")
    h.update_chat_settings(cast, cast, followers_only=False,
                           slow_mode_seconds=30)
    # The viewer's last message was just sent: slow mode counts from it.
    with pytest.raises(sh.SlowMode) as ei:
        h.send_message(view, sid, "second")
    assert isinstance(ei.value, sh.RateLimited)
    assert 0 < ei.value.retry_after <= 30.0
    h.update_chat_settings(cast, cast, slow_mode_seconds=0)
    h.timeout(cast, cast, view, 120, "cool down")
    with pytest.raises(sh.TimedOut) as ei:
        h.send_message(view, sid, "x")
    assert 100 < ei.value.retry_after <= 120
    h.ban(cast, cast, view, "spam")
    with pytest.raises(sh.Banned) as ei:
        h.send_message(view, sid, "x")
    assert ei.value.name == "SH_EBANNED" and ei.value.code == 17
    h.unban(cast, cast, view)
    # chat.rate-limit is 5 a minute: the sixth is refused, with a wait.
    with pytest.raises(sh.RateLimited) as ei:
        for i in range(10):
            h.send_message(view, sid, f"m{i}")
    assert type(ei.value) is sh.RateLimited and ei.value.retry_after > 0


def test_moderation(room) -> None:
    h, cast, view, mod, sid = room
    assert not h.is_moderator(cast, mod)
    with pytest.raises(sh.Forbidden):
        h.add_moderator(view, cast, mod)
    h.add_moderator(cast, cast, mod)
    h.add_moderator(cast, cast, mod)                    # idempotent
    assert h.is_moderator(cast, mod)
    with pytest.raises(sh.InvalidArgument):
        h.add_moderator(cast, cast, cast)
    with pytest.raises(sh.Forbidden):
        h.ban(mod, cast, cast)                          # the broadcaster
    with pytest.raises(sh.InvalidArgument):
        h.timeout(mod, cast, view, 0)
    with pytest.raises(sh.InvalidArgument):
        h.timeout(mod, cast, view, 1209601)             # max + 1
    with pytest.raises(sh.InvalidArgument):
        h.ban(mod, cast, view, "r" * 501)
    h.timeout(mod, cast, view, 1209600)                 # max
    h.unban(mod, cast, view)
    h.remove_moderator(cast, cast, mod)
    assert not h.is_moderator(cast, mod)
    with pytest.raises(sh.Forbidden):
        h.ban(mod, cast, view)


def test_chat_settings(room) -> None:
    h, cast, view, mod, sid = room
    s = h.chat_settings(cast)
    assert isinstance(s, ChatSettings) and s.max_message_length == 500
    s = h.update_chat_settings(cast, cast, {"maxMessageLength": 2000},
                               slow_mode_seconds=1)
    assert (s.max_message_length, s.slow_mode_seconds) == (2000, 1)
    assert h.chat_settings(cast) == s
    for bad in [{"max_message_length": 2001}, {"slow_mode_seconds": -1},
                {"nonsense": 1}, {"blocked_terms": [""]},
                {"blocked_terms": ["a\x01b"]}]:
        with pytest.raises(sh.InvalidArgument):
            h.update_chat_settings(cast, cast, bad)
    with pytest.raises(sh.Forbidden):
        h.update_chat_settings(view, cast, slow_mode_seconds=2)
    with pytest.raises(sh.NotFound):
        h.chat_settings("no-such-user")
    h.update_chat_settings(cast, cast, max_message_length=500,
                           slow_mode_seconds=0)
