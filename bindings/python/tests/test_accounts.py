"""register, login, refresh, revoke, verify and user lookups."""

from __future__ import annotations

import pytest

from streamhub import (AuthPayload, Conflict, InvalidArgument, NotFound,
                       Unauthenticated, User)
from conftest import PASSWORD


def test_register_returns_an_auth_payload(alice: AuthPayload) -> None:
    assert isinstance(alice.user, User)
    assert alice.access_token.count(".") == 2
    assert len(alice.refresh_token) == 43
    assert alice.expires_in > 0
    assert alice.user.email == f"{alice.user.username}@example.com"


def test_login_refresh_revoke(hub, bob: AuthPayload) -> None:
    a = hub.login(bob.user.username.upper(), PASSWORD)
    assert a.user.id == bob.user.id
    b = hub.refresh(a.refresh_token)
    assert b.refresh_token != a.refresh_token
    # Spent token again: the whole family is revoked.
    with pytest.raises(Unauthenticated):
        hub.refresh(a.refresh_token)
    with pytest.raises(Unauthenticated):
        hub.refresh(b.refresh_token)
    c = hub.login(bob.user.username, PASSWORD)
    hub.revoke(c.refresh_token)
    hub.logout(c.refresh_token)          # revoking twice is fine
    with pytest.raises(Unauthenticated):
        hub.refresh(c.refresh_token)


def test_login_refuses_wrong_password_and_unknown_user(hub, bob) -> None:
    with pytest.raises(Unauthenticated) as e1:
        hub.login(bob.user.username, "wrong password")
    with pytest.raises(Unauthenticated) as e2:
        hub.login("nobody_here", "wrong password")
    assert e1.value.message == e2.value.message
    assert e1.value.code == 6


def test_verify(hub, alice) -> None:
    p = hub.verify(alice.access_token)
    assert p.user_id == alice.user.id
    assert p.username == alice.user.username
    assert p.roles & 1
    for bad in ["", "x", alice.access_token[:-1],
                alice.access_token + "x", "a.b.c", "é" * 10]:
        with pytest.raises(Unauthenticated):
            hub.verify(bad)


def test_register_conflicts_and_bad_input(hub, alice) -> None:
    with pytest.raises(Conflict):
        hub.register(alice.user.username.upper(), "other@example.com",
                     PASSWORD)
    with pytest.raises(Conflict):
        hub.register("fresh_name_1", alice.user.email.upper(), PASSWORD)
    bad = [
        ("", "e1@example.com", PASSWORD),
        ("ab", "e1@example.com", PASSWORD),                  # min - 1
        ("a" * 26, "e1@example.com", PASSWORD),              # max + 1
        ("bad name", "e1@example.com", PASSWORD),
        ("jos\u00e9", "e1@example.com", PASSWORD),           # non-ASCII
        ("okname", "not-an-email", PASSWORD),
        ("okname", "e1@example.com", "short"),               # min - 1
        ("okname", "e1@example.com", "p" * 1025),            # max + 1
        ("okname", "e\udcff@example.com", PASSWORD),         # bad UTF-8
    ]
    for args in bad:
        with pytest.raises(InvalidArgument):
            hub.register(*args)


def test_embedded_nul_never_reaches_c(hub) -> None:
    with pytest.raises(ValueError):
        hub.register("nul\x00name", "n@example.com", PASSWORD)
    with pytest.raises(ValueError):
        hub.get_stream("abc\x00def")


def test_user_lookups(hub, alice, bob) -> None:
    u = hub.user(alice.user.id)
    assert u.username == alice.user.username and u.email is None
    assert hub.user(alice.user.id, viewer_id=alice.user.id).email
    assert hub.get_user(alice.user.id, viewer_id=bob.user.id).email is None
    assert hub.user_by_username(alice.user.username.upper()).id == \
        alice.user.id
    for bad in ["", "nope", "00000000-0000-0000-0000-000000000000",
                "x" * 1000]:
        with pytest.raises(NotFound):
            hub.user(bad)
    with pytest.raises(NotFound):
        hub.user_by_username("no_such_user_here")
    with pytest.raises(NotFound):
        hub.user_by_username("not valid!")
