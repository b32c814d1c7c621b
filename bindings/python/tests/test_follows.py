"""follow, unfollow, followers, following, counts, channel subscriptions."""

from __future__ import annotations

import time

import pytest

from streamhub import (ChannelSubscription, InvalidArgument, NotFound,
                       Unauthenticated)


def test_follow_is_idempotent_and_listed(hub, make_user) -> None:
    a, b, c = make_user("fa"), make_user("fb"), make_user("fc")
    assert hub.follow(b.user.id, a.user.id) is True
    assert hub.follow(b.user.id, a.user.id) is False
    time.sleep(0.01)     # follow times are in milliseconds
    assert hub.follow(c.user.id, a.user.id) is True
    assert hub.is_following(b.user.id, a.user.id)
    assert not hub.is_following(a.user.id, b.user.id)
    assert hub.follow_counts(a.user.id) == (2, 0)
    assert hub.follow_counts(b.user.id) == (0, 1)
    page = hub.followers(a.user.id)
    assert [u.id for u in page] == [c.user.id, b.user.id]  # newest first
    assert page.total_count == 2 and page.next_cursor is None
    first = hub.followers(a.user.id, first=1)
    assert len(first) == 1 and first.next_cursor
    second = hub.followers(a.user.id, first=1, after=first.next_cursor)
    assert second.items[0].id == b.user.id
    assert [u.id for u in hub.following(b.user.id)] == [a.user.id]
    assert hub.unfollow(b.user.id, a.user.id) is True
    assert hub.unfollow(b.user.id, a.user.id) is False
    assert hub.follow_counts(a.user.id) == (1, 0)


def test_follow_errors(hub, alice, bob) -> None:
    with pytest.raises(InvalidArgument):
        hub.follow(alice.user.id, alice.user.id)
    with pytest.raises(NotFound):
        hub.follow(alice.user.id, "no-such-user")
    with pytest.raises(Unauthenticated):
        hub.follow(None, bob.user.id)  # type: ignore[arg-type]
    for first in (0, -1):
        with pytest.raises(InvalidArgument):
            hub.followers(alice.user.id, first=first)
    with pytest.raises(InvalidArgument):
        hub.followers(alice.user.id, after="not-our-cursor")
    # Larger pages are clamped, not refused.
    assert hub.followers(alice.user.id, first=10**6).total_count >= 0


def test_channel_subscription(hub, alice, carol) -> None:
    s = hub.subscribe_to_channel(carol.user.id, alice.user.id, tier=3)
    assert isinstance(s, ChannelSubscription)
    assert s.tier == 3 and s.channel.id == alice.user.id
    assert s.subscriber.username == carol.user.username
    for tier in (4, -1):
        with pytest.raises(InvalidArgument):
            hub.subscribe_to_channel(carol.user.id, alice.user.id, tier)
    with pytest.raises(InvalidArgument):
        hub.subscribe_to_channel(carol.user.id, carol.user.id)
    with pytest.raises(NotFound):
        hub.subscribe_to_channel(carol.user.id, "nobody")
