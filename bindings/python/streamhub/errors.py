"""Exceptions raised for the sh_err_t codes of the C API.

Every failing call raises a StreamHubError (or a subclass) carrying the C
code (`.code`), its stable symbolic name (`.name`, from sh_err_name()) and
the one-line message the library wrote into the call's error buffer (or
sh_strerror() when the call has none).  The chat refusals have their own
classes, so that a bot can tell "banned" from "slow mode" without looking at
numbers; they also derive from the generic class of their kind (a SlowMode
is a RateLimited, a Banned is a Forbidden, a TooLong an InvalidArgument).
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import _lib

# The values of error.h: stable and append-only, so hard-coding them is safe.
OK = 0
ENOMEM = 1
EINVAL = 2
ENOTFOUND = 3
ECONFLICT = 4
EFORBIDDEN = 5
EUNAUTHENTICATED = 6
ERATELIMITED = 7
ESTORE = 8
EBUS = 9
EIO = 10
ETOOBIG = 11
EBUSY = 12
ECANCELED = 13
EINTERNAL = 14
ENOTSUP = 15
ETIMEDOUT = 16
EBANNED = 17
ETIMEDOUT_USER = 18
EFOLLOWERSONLY = 19
ESLOWMODE = 20
ETOOLONG = 21
EBADUTF8 = 22
EBLOCKEDTERM = 23
EEMPTY = 24


class StreamHubError(Exception):
    """A libstreamhub call failed.

    Attributes: code (the sh_err_t value), name (e.g. "SH_ENOTFOUND"),
    message (the library's explanation).
    """

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.name: str = _lib.lib.sh_err_name(code).decode()
        if not message:
            message = _lib.lib.sh_strerror(code).decode()
        self.message = message
        super().__init__(f"{self.name}: {message}")


class OutOfMemory(StreamHubError, MemoryError):
    pass


class InvalidArgument(StreamHubError, ValueError):
    pass


class NotFound(StreamHubError, LookupError):
    pass


class Conflict(StreamHubError):
    pass


class Forbidden(StreamHubError, PermissionError):
    pass


class Unauthenticated(StreamHubError, PermissionError):
    pass


class RateLimited(StreamHubError):
    """Too many requests; `.retry_after` is the wait in seconds (float), or
    None when the call does not say."""

    def __init__(self, code: int, message: str = "",
                 retry_after: Optional[float] = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class StoreError(StreamHubError):
    pass


class BusError(StreamHubError):
    pass


class TooLarge(InvalidArgument):
    pass


class Busy(StreamHubError):
    """A bounded queue is full (or a subscriber was dropped): retry later."""


class Closed(StreamHubError):
    """The hub is closing or closed (SH_ECANCELED)."""


class NotSupported(StreamHubError, NotImplementedError):
    pass


class Timeout(StreamHubError, TimeoutError):
    pass


class Banned(Forbidden):
    pass


class TimedOut(Forbidden):
    """The author is timed out; `.retry_after` is the time left, seconds."""

    def __init__(self, code: int, message: str = "",
                 retry_after: Optional[float] = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class FollowersOnly(Forbidden):
    pass


class SlowMode(RateLimited):
    pass


class TooLong(InvalidArgument):
    pass


class BadUtf8(InvalidArgument):
    pass


class BlockedTerm(InvalidArgument):
    pass


class Empty(InvalidArgument):
    pass


_BY_CODE: Dict[int, Type[StreamHubError]] = {
    ENOMEM: OutOfMemory,
    EINVAL: InvalidArgument,
    ENOTFOUND: NotFound,
    ECONFLICT: Conflict,
    EFORBIDDEN: Forbidden,
    EUNAUTHENTICATED: Unauthenticated,
    ERATELIMITED: RateLimited,
    ESTORE: StoreError,
    EBUS: BusError,
    ETOOBIG: TooLarge,
    EBUSY: Busy,
    ECANCELED: Closed,
    ENOTSUP: NotSupported,
    ETIMEDOUT: Timeout,
    EBANNED: Banned,
    ETIMEDOUT_USER: TimedOut,
    EFOLLOWERSONLY: FollowersOnly,
    ESLOWMODE: SlowMode,
    ETOOLONG: TooLong,
    EBADUTF8: BadUtf8,
    EBLOCKEDTERM: BlockedTerm,
    EEMPTY: Empty,
}


def error_class(code: int) -> Type[StreamHubError]:
    """The exception class raised for the C code @code."""
    return _BY_CODE.get(code, StreamHubError)


def make_error(code: int, message: str = "",
               retry_after_ms: Optional[int] = None) -> StreamHubError:
    cls = error_class(code)
    if issubclass(cls, (RateLimited, TimedOut)):
        ra = None
        if retry_after_ms is not None and retry_after_ms > 0:
            ra = retry_after_ms / 1000.0
        return cls(code, message, ra)  # type: ignore[call-arg]
    return cls(code, message)


def check(code: int, buf: Optional[object] = None,
          retry_after_ms: Optional[int] = None) -> None:
    """Raise the exception for @code unless it is SH_OK."""
    if code == OK:
        return
    msg = ""
    if buf is not None:
        raw: bytes = buf.value  # type: ignore[attr-defined]
        msg = raw.decode("utf-8", "replace")
    raise make_error(code, msg, retry_after_ms)
