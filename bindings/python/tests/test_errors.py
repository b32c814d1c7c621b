"""The sh_err_t -> exception mapping.  Each class is raised by a real
failing call in the area tests (test_chat.py has every chat refusal,
test_subscriptions.py Busy and TooLarge, test_hub.py Closed); this file
checks the table against the library's own names."""

from __future__ import annotations

import pytest

import streamhub as sh
from streamhub import errors as E
from streamhub import _lib

EXPECTED = {
    2: sh.InvalidArgument, 3: sh.NotFound, 4: sh.Conflict,
    5: sh.Forbidden, 6: sh.Unauthenticated, 7: sh.RateLimited,
    11: sh.TooLarge, 12: sh.Busy, 13: sh.Closed, 15: sh.NotSupported,
    17: sh.Banned, 18: sh.TimedOut, 19: sh.FollowersOnly, 20: sh.SlowMode,
    21: sh.TooLong, 22: sh.BadUtf8, 23: sh.BlockedTerm, 24: sh.Empty,
}


@pytest.mark.parametrize("code", range(1, 25))
def test_codes_map_to_named_classes(code: int) -> None:
    err = E.make_error(code, "msg", 1500)
    assert isinstance(err, sh.StreamHubError)
    assert err.code == code
    assert err.name == _lib.lib.sh_err_name(code).decode()
    assert err.name.startswith("SH_E")
    assert str(err) == f"{err.name}: msg"
    if code in EXPECTED:
        assert type(err) is EXPECTED[code]
    if isinstance(err, (sh.RateLimited, sh.TimedOut)):
        assert err.retry_after == 1.5


def test_hierarchy() -> None:
    assert issubclass(sh.SlowMode, sh.RateLimited)
    for cls in (sh.Banned, sh.TimedOut, sh.FollowersOnly):
        assert issubclass(cls, sh.Forbidden)
    for cls in (sh.TooLong, sh.BadUtf8, sh.BlockedTerm, sh.Empty,
                sh.TooLarge):
        assert issubclass(cls, sh.InvalidArgument)
        assert issubclass(cls, ValueError)
    assert issubclass(sh.NotFound, LookupError)


def test_unknown_code_is_generic_with_a_message() -> None:
    err = E.make_error(9999)
    assert type(err) is sh.StreamHubError
    assert err.name == "SH_UNKNOWN" and err.message


def test_message_comes_from_the_errbuf(hub) -> None:
    with pytest.raises(sh.NotFound) as ei:
        hub.get_stream("missing")
    # The call's own explanation, not the generic sh_strerror() text.
    assert ei.value.message == "no such stream"
