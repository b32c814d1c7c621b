"""A user's notifications: list, unread count, mark read."""

from __future__ import annotations

import pytest

from streamhub import InvalidArgument, NotificationPage, Unauthenticated


def test_notifications_flow(hub, make_user) -> None:
    star, fan = make_user("star"), make_user("fan")
    hub.follow(fan.user.id, star.user.id)            # NEW_FOLLOWER for star
    s = hub.start_stream(star.user.id, "hello fans")  # STREAM_LIVE for fan
    page = hub.notifications(fan.user.id)
    assert isinstance(page, NotificationPage)
    assert [n.type for n in page] == ["STREAM_LIVE"]
    assert page.items[0].data["streamId"] == s.id
    assert page.unread_count == 1 and not page.items[0].read
    assert hub.unread_count(fan.user.id) == 1
    star_page = hub.notifications(star.user.id)
    assert [n.type for n in star_page] == ["NEW_FOLLOWER"]
    hub.subscribe_to_channel(fan.user.id, star.user.id)
    assert hub.unread_count(star.user.id) == 2
    # Marking someone else's, unknown and empty id lists changes nothing.
    assert hub.mark_read(star.user.id, [page.items[0].id, "nope"]) == 0
    assert hub.mark_read(fan.user.id, []) == 0
    assert hub.mark_read(fan.user.id, [page.items[0].id]) == 1
    assert hub.mark_read(fan.user.id, [page.items[0].id]) == 0
    assert hub.unread_count(fan.user.id) == 0
    assert hub.notifications(fan.user.id, unread_only=True).items == []
    assert hub.mark_read(star.user.id) == 2           # all
    assert hub.unread_count(star.user.id) == 0
    hub.stop_stream(star.user.id, s.id)


def test_notification_errors(hub, alice) -> None:
    with pytest.raises(Unauthenticated):
        hub.notifications(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        hub.notifications(alice.user.id, first=0)
    with pytest.raises(InvalidArgument):
        hub.mark_read(alice.user.id, ["x"] * 1001)
    with pytest.raises(ValueError):
        hub.mark_read(alice.user.id, ["a\x00b"])
