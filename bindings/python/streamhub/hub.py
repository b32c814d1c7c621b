"""The Hub: one libstreamhub instance, and its subscriptions.

Threads.  The C hub is thread-safe, and every service call here may come
from any Python thread (ctypes releases the GIL for the call, so slow calls
such as register() do not stall other threads).  Events are different: the
hub is standalone (never attached to a loop), so the C library calls back
only inside sh_hub_poll(), on the thread that polls.  The binding polls only
from Hub.poll(), Subscription iteration and the asyncio reader, all on the
caller's thread, under a lock (sh_hub_poll() is "one thread at a time"), so
C never calls into Python from a thread of its own.

Callbacks.  One CFUNCTYPE thunk serves every subscription of every hub; it
lives as long as the module, so no callback can ever run through a freed
thunk.  Its `arg` is a small integer naming the subscription in a registry;
the registry keeps the Subscription alive until the final callback
(SH_ECANCELED or SH_EBUSY), after which C never uses the handle again.
The callback copies everything out of the event (borrowed only for the
callback) into an Event dataclass, and never raises into C.

Closing.  close() waits for the calls running on other threads, then calls
sh_hub_close(), which runs each subscription's final callback on the closing
thread; a call made after close() raises Closed, never touching freed memory.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import json
import threading
import time
import warnings
from ctypes import byref, c_bool, c_char_p, c_int64, c_size_t, c_uint64, \
    c_void_p
from typing import (Any, Callable, Deque, Dict, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, Union)

from . import _lib
from . import errors as E
from .models import (AuthPayload, ChannelSubscription, ChatHistory,
                     ChatMessage, ChatSettings, Event, NotificationPage, Page,
                     Position, Principal, Raid, Stream, StreamStats, User,
                     build, build_history, build_notification_page,
                     build_page)

L = _lib.lib
enc = _lib.enc

SinceArg = Union[None, Position, Tuple[str, int]]
EventCallback = Callable[[Event], Any]


def _need(name: str) -> Any:
    if not _lib.has(name):
        raise E.NotSupported(E.ENOTSUP, f"this libstreamhub ({_lib.path}) "
                             f"has no {name}")
    return getattr(L, name)


def _config_names() -> Dict[str, str]:
    """Every config key, by its name with '-' and '.' read as '_'."""
    names: Dict[str, str] = {}
    i = 0
    while True:
        name = c_char_p()
        if L.sh_config_describe(i, byref(name), None, None) != E.OK:
            break
        key = (name.value or b"").decode()
        names[key.replace("-", "_").replace(".", "_")] = key
        i += 1
    return names


_CONFIG_NAMES = _config_names()


def _config_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(_config_value(x) for x in v)
    return str(v)


def _json_of(getter: str, handle: int) -> Any:
    return json.loads(_lib.text_at(getattr(L, getter), handle))


# ---- subscriptions --------------------------------------------------------

_registry: Dict[int, "Subscription"] = {}
_ids = itertools.count(1)
# Set while this thread runs callbacks inside sh_hub_poll()/sh_hub_close():
# the C API forbids calling either from a callback.
_tls = threading.local()


def in_callback() -> bool:
    return bool(getattr(_tls, "depth", 0))


def _on_event(arg: Optional[int], ev: Optional[int], status: int) -> None:
    # Runs inside sh_hub_poll() (or sh_hub_close()), on the Python thread
    # that made that call.  Never raise into C.
    sub: Optional[Subscription] = None
    try:
        sub = _registry.get(arg or 0)
        if sub is None:
            return
        if status != E.OK or not ev:
            _registry.pop(arg or 0, None)
            sub._final(status)
            return
        n = c_size_t(0)
        p = L.sh_event_data(ev, byref(n))
        raw = ctypes.string_at(p, n.value) if p else b"null"
        event = Event(channel=L.sh_event_channel(ev).decode(),
                      epoch=L.sh_event_epoch(ev).decode(),
                      offset=int(L.sh_event_offset(ev)),
                      type=L.sh_event_type(ev).decode(),
                      data=json.loads(raw),
                      time_ms=int(L.sh_event_time_ms(ev)))
        sub._deliver(event)
    except BaseException as exc:  # noqa: BLE001 - must not unwind into C
        # Re-raised on the polling thread once sh_hub_poll() returned: by
        # Hub.poll() for a callback's exception, by get() otherwise.
        if sub is not None:
            if sub.callback is not None:
                sub.hub._pending_errors.append(exc)
            else:
                sub._errors.append(exc)


_THUNK = _lib.EVENT_CB(_on_event)


class Subscription:
    """A subscription to one channel.

    Iterate it (`for ev in sub`, or `next(sub)`, or `sub.get(timeout)`) to
    receive Events: each step polls the hub on the calling thread.  With a
    `callback`, events go to the callback instead, from whichever of
    Hub.poll(), Subscription.get() or iteration runs the hub's callbacks.
    `recovered` and `position` tell what sh_subscribe() found;
    `last_position` is the position of the last event delivered, to hand
    back as `since` later.  Close it with close() (or use it as a context
    manager); the iterator stops when the subscription ends.
    """

    def __init__(self, hub: "Hub", channel: str,
                 callback: Optional[EventCallback],
                 poll_interval: float) -> None:
        self.hub = hub
        self.channel = channel
        self.callback = callback
        self.poll_interval = poll_interval
        self.recovered = False
        self.position = Position("", 0)
        self.last_position: Optional[Position] = None
        #: SH_ECANCELED or SH_EBUSY once the final callback ran, else None.
        self.end_status: Optional[int] = None
        self._queue: Deque[Event] = collections.deque()
        self._errors: List[BaseException] = []
        self._busy_reported = False
        self._handle: Optional[int] = None
        # The C handle, valid until released in __del__ even after the
        # subscription ended (sh_subscription_free()).
        self._chandle: Optional[int] = None
        self._id = next(_ids)

    # called from _on_event only
    def _deliver(self, event: Event) -> None:
        self.last_position = event.position
        if self.callback is not None:
            self.callback(event)
        else:
            self._queue.append(event)

    def _final(self, status: int) -> None:
        self.end_status = status
        self._handle = None

    @property
    def active(self) -> bool:
        """True until the final callback ran."""
        return self.end_status is None

    @property
    def dropped(self) -> bool:
        """True when the hub dropped this subscriber for falling behind
        (SH_EBUSY): subscribe again with `since=last_position`."""
        return self.end_status == E.EBUSY

    def _raise_pending(self) -> None:
        if self._errors:
            raise self._errors.pop(0)

    def get(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to @timeout seconds (None: until one
        comes or the subscription ends).  Returns None on timeout or end.
        Raises Busy once when the hub dropped this subscriber for falling
        behind (then resubscribe with since=last_position)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._raise_pending()
            if self._queue:
                return self._queue.popleft()
            if not self.active:
                if self.end_status == E.EBUSY and not self._busy_reported:
                    self._busy_reported = True
                    raise E.Busy(E.EBUSY, f"subscriber to {self.channel} "
                                 "fell behind and was dropped; subscribe "
                                 "again with since=last_position")
                return None
            wait = self.poll_interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    # One last look without waiting.
                    self.hub.poll(0)
                    self._raise_pending()
                    return self._queue.popleft() if self._queue else None
                wait = min(wait, left)
            self.hub.poll(wait)

    def drain(self, timeout: float = 0.0) -> List[Event]:
        """Every event pending now (after polling up to @timeout)."""
        out: List[Event] = []
        first = self.get(timeout)
        while first is not None:
            out.append(first)
            first = self.get(0)
        return out

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        ev = self.get(None)
        if ev is None:
            raise StopIteration
        return ev

    def __aiter__(self) -> Any:
        from .aio import aiter_subscription
        return aiter_subscription(self)

    def close(self) -> None:
        """Unsubscribe; idempotent.  Events already queued stay readable
        (drain them with get(0)); no new ones arrive."""
        if self._handle is not None and self.hub._handle is not None:
            with self.hub._call():
                L.sh_unsubscribe(self._chandle)
            # The final callback follows through the dispatcher: run it now
            # so that the registry lets go of us promptly (not from inside
            # a callback: the next poll runs it).
            if in_callback():
                return
            for _ in range(100):
                if not self.active:
                    break
                self.hub.poll(0.01)

    def __del__(self) -> None:
        h, self._chandle = getattr(self, "_chandle", None), None
        if h is not None:
            try:
                L.sh_subscription_free(h)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return (f"<Subscription {self.channel!r} {state} "
                f"recovered={self.recovered}>")


# ---- the hub --------------------------------------------------------------

class Hub:
    """One StreamHub instance: a store, a bus and the services on them.

    `Hub(store="sqlite::memory:", bus="local", **config)`: configuration
    keys (docs/CONFIG.md) as keyword arguments with '-' and '.' written as
    '_' (`chat_max_message_length=200`), or verbatim in the `config`
    mapping ({"chat.max-message-length": 200}).  Values may be str, int,
    bool or a list (comma-joined).  A bad key or value raises
    InvalidArgument naming it.

    Use as a context manager, or call close() (idempotent).  Ids of users,
    streams and messages are strings; `actor_id` is the id of the
    authenticated user on whose behalf a call is made (the C API trusts its
    caller: authenticate with verify() first when the id comes from a
    token).
    """

    def __init__(self, store: str = "sqlite::memory:", bus: str = "local",
                 config: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> None:
        self._handle: Optional[int] = None
        self._lock = threading.Condition()
        self._active = 0
        self._closing = False
        self._poll_lock = threading.Lock()
        self._pending_errors: List[BaseException] = []
        items: List[Tuple[str, Any]] = [("store", store), ("bus", bus)]
        for k, v in (config or {}).items():
            items.append((k, v))
        for k, v in kwargs.items():
            key = _CONFIG_NAMES.get(k)
            if key is None:
                raise E.InvalidArgument(
                    E.EINVAL, f"unknown configuration key {k!r}")
            items.append((key, v))
        conf = c_void_p()
        E.check(L.sh_config_new(byref(conf)))
        try:
            for k, v in items:
                buf = _lib.errbuf()
                E.check(L.sh_config_set(conf, enc(k), enc(_config_value(v)),
                                        buf, len(buf)), buf)
            hub = c_void_p()
            buf = _lib.errbuf()
            E.check(L.sh_hub_open(conf, byref(hub), buf, len(buf)), buf)
        except BaseException:
            L.sh_config_free(conf)    # still ours: open failed or not run
            raise
        self._handle = hub.value

    # -- life cycle ---------------------------------------------------------

    def _call(self) -> "_CallGuard":
        return _CallGuard(self)

    def close(self) -> None:
        """Close the hub (idempotent): wait for calls running on other
        threads, end every subscription (their final callbacks run here),
        flush pending chat to the store, free everything."""
        if in_callback():
            raise RuntimeError("Hub.close() called from an event callback")
        with self._lock:
            if self._handle is None or self._closing:
                return
            self._closing = True
            while self._active > 0:
                self._lock.wait()
            handle = self._handle
        with self._poll_lock:
            _tls.depth = getattr(_tls, "depth", 0) + 1
            try:
                L.sh_hub_close(handle)
            finally:
                _tls.depth -= 1
        with self._lock:
            self._handle = None
            self._closing = False
        from . import aio
        aio.forget(self)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Hub":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            warnings.warn("streamhub.Hub was not closed", ResourceWarning,
                          stacklevel=1)
            try:
                self.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    # -- events -------------------------------------------------------------

    def fileno(self) -> int:
        """A file descriptor readable while callbacks are pending
        (sh_hub_fd()); wait on it, then call poll(0).  Do not read or close
        it."""
        with self._call() as h:
            return int(L.sh_hub_fd(h))

    def poll(self, timeout: float = 0.0) -> int:
        """Run pending callbacks, waiting up to @timeout seconds for the
        first (negative: wait until one comes).  Returns how many ran.  Only
        one thread polls at a time: others wait for it."""
        if timeout < 0:
            ms = -1
        else:
            ms = int(min(timeout, 86400.0) * 1000)
            if timeout > 0 and ms == 0:
                ms = 1
        if in_callback():
            raise RuntimeError("Hub.poll() called from an event callback")
        with self._poll_lock:
            with self._call() as h:
                _tls.depth = getattr(_tls, "depth", 0) + 1
                try:
                    n = int(L.sh_hub_poll(h, ms))
                finally:
                    _tls.depth -= 1
        if n < 0:
            raise E.make_error(-n, "sh_hub_poll refused")
        if self._pending_errors:
            raise self._pending_errors.pop(0)
        return n

    def subscribe(self, channel: str, since: SinceArg = None,
                  callback: Optional[EventCallback] = None,
                  poll_interval: float = 0.1) -> Subscription:
        """Subscribe to @channel ("live", "chat:<streamId>",
        "stream:<streamId>", "user:<userId>", "app:<name>").

        @since     None for live events only, or the Position / (epoch,
                   offset) last seen: the events missed since are delivered
                   first, in order, when `recovered` is True.
        @callback  None to iterate, else called with each Event from the
                   thread that polls the hub.
        """
        sub = Subscription(self, channel, callback, poll_interval)
        pos = None
        if since is not None:
            epoch, offset = (since.as_tuple() if isinstance(since, Position)
                             else since)
            eb = enc(epoch) or b""
            if len(eb) >= _lib.SH_EPOCH_SIZE:
                raise E.InvalidArgument(E.EINVAL, "since: epoch too long")
            pos = _lib.Position(eb, int(offset))
        handle = c_void_p()
        result = _lib.SubscribeResult()
        buf = _lib.errbuf()
        _registry[sub._id] = sub
        try:
            with self._call() as h:
                rc = L.sh_subscribe(h, enc(channel),
                                    byref(pos) if pos is not None else None,
                                    _THUNK, c_void_p(sub._id), byref(handle),
                                    byref(result), buf, len(buf))
            E.check(rc, buf)
        except BaseException:
            _registry.pop(sub._id, None)   # on error no callback will run
            raise
        sub._handle = sub._chandle = handle.value
        sub.recovered = bool(result.recovered)
        sub.position = Position(result.current.epoch.decode(),
                                int(result.current.offset))
        return sub

    def publish(self, channel: str, type: str, data: Any = None, *,
                raw: Union[None, str, bytes] = None) -> int:
        """Publish an event; returns its offset.  @data is serialised with
        json.dumps; @raw passes JSON text through as is."""
        if raw is None:
            payload = json.dumps(data, separators=(",", ":")).encode()
        elif isinstance(raw, bytes):
            payload = raw
        else:
            payload = raw.encode("utf-8", "surrogatepass")
        off = c_uint64(0)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = L.sh_publish(h, enc(channel), enc(type), payload,
                              len(payload), byref(off), buf, len(buf))
        E.check(rc, buf)
        return int(off.value)

    def channel_position(self, channel: str) -> Position:
        """The channel's current epoch and top offset."""
        pos = _lib.Position()
        buf = _lib.errbuf()
        with self._call() as h:
            rc = L.sh_channel_position(h, enc(channel), byref(pos), buf,
                                       len(buf))
        E.check(rc, buf)
        return Position(pos.epoch.decode(), int(pos.offset))

    # -- helpers ------------------------------------------------------------

    def _get(self, fn: str, getter: str, free: str, *args: Any) -> Any:
        """Call `sh_err_t fn(hub, *args, T **out, errbuf, len)`, return the
        parsed JSON of *out and free it."""
        f = _need(fn)
        out = c_void_p()
        buf = _lib.errbuf()
        with self._call() as h:
            rc = f(h, *args, byref(out), buf, len(buf))
            E.check(rc, buf)
            try:
                return _json_of(getter, out.value) if out.value else None
            finally:
                getattr(L, free)(out)

    def _do(self, fn: str, *args: Any) -> None:
        f = _need(fn)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = f(h, *args, buf, len(buf))
        E.check(rc, buf)

    # -- accounts -----------------------------------------------------------

    def register(self, username: str, email: str,
                 password: str) -> AuthPayload:
        """Create a user and log them in (slow: one Argon2id hash)."""
        return build(AuthPayload, self._get(
            "sh_auth_register", "sh_auth_json", "sh_auth_free",
            enc(username), enc(email), enc(password)))

    def login(self, username: str, password: str) -> AuthPayload:
        """Log in (slow: one Argon2id hash).  Unauthenticated on failure."""
        return build(AuthPayload, self._get(
            "sh_auth_login", "sh_auth_json", "sh_auth_free",
            enc(username), enc(password)))

    def refresh(self, refresh_token: str) -> AuthPayload:
        """Spend a refresh token for a new pair (single use)."""
        return build(AuthPayload, self._get(
            "sh_auth_refresh", "sh_auth_json", "sh_auth_free",
            enc(refresh_token)))

    def revoke(self, refresh_token: str) -> None:
        """Log out: revoke the refresh token's whole family."""
        self._do("sh_auth_revoke", enc(refresh_token))

    logout = revoke

    def verify(self, access_token: str) -> Principal:
        """Check an access token; whom it names.  Unauthenticated if bad."""
        tok = enc(access_token) or b""
        out = c_void_p()
        with self._call() as h:
            E.check(L.sh_auth_verify(h, tok, len(tok), byref(out)))
            try:
                return Principal(
                    user_id=L.sh_principal_user_id(out).decode(),
                    username=L.sh_principal_username(out).decode(),
                    roles=int(L.sh_principal_roles(out)),
                    exp=int(L.sh_principal_exp(out)))
            finally:
                L.sh_principal_free(out)

    def user(self, user_id: str, viewer_id: Optional[str] = None) -> User:
        """A user by id (email only when @viewer_id is that user)."""
        return build(User, self._get("sh_user_get", "sh_user_json",
                                     "sh_user_free", enc(viewer_id),
                                     enc(user_id)))

    get_user = user

    def user_by_username(self, username: str,
                         viewer_id: Optional[str] = None) -> User:
        """A user by username, in any ASCII case."""
        return build(User, self._get(
            "sh_user_get_by_username", "sh_user_json", "sh_user_free",
            enc(viewer_id), enc(username)))

    # -- follows ------------------------------------------------------------

    def follow(self, actor_id: str, user_id: str) -> bool:
        """@actor_id follows @user_id; True when the follow is new."""
        return self._flag("sh_follow", enc(actor_id), enc(user_id))

    def unfollow(self, actor_id: str, user_id: str) -> bool:
        """True when a follow was removed."""
        return self._flag("sh_unfollow", enc(actor_id), enc(user_id))

    def is_following(self, follower_id: str, followed_id: str) -> bool:
        return self._flag("sh_follow_check", enc(follower_id),
                          enc(followed_id))

    def _flag(self, fn: str, *args: Any) -> bool:
        f = _need(fn)
        flag = c_bool(False)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = f(h, *args, byref(flag), buf, len(buf))
        E.check(rc, buf)
        return bool(flag.value)

    def follow_counts(self, user_id: str) -> Tuple[int, int]:
        """(followers, following) of @user_id."""
        a, b = c_int64(0), c_int64(0)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = L.sh_follow_counts(h, enc(user_id), byref(a), byref(b),
                                    buf, len(buf))
        E.check(rc, buf)
        return int(a.value), int(b.value)

    def followers(self, user_id: str, first: int = 20,
                  after: Optional[str] = None) -> Page[User]:
        """The followers of @user_id, newest follow first."""
        return build_page(User, self._get(
            "sh_followers_list", "sh_user_list_json", "sh_user_list_free",
            enc(user_id), int(first), enc(after)))

    def following(self, user_id: str, first: int = 20,
                  after: Optional[str] = None) -> Page[User]:
        """The users @user_id follows, newest follow first."""
        return build_page(User, self._get(
            "sh_following_list", "sh_user_list_json", "sh_user_list_free",
            enc(user_id), int(first), enc(after)))

    def subscribe_to_channel(self, actor_id: str, channel_id: str,
                             tier: int = 1) -> ChannelSubscription:
        """A paid subscription of @actor_id to user @channel_id (tier
        1..3)."""
        return build(ChannelSubscription, self._get(
            "sh_channel_subscribe", "sh_channel_subscription_json",
            "sh_channel_subscription_free", enc(actor_id), enc(channel_id),
            int(tier)))

    # -- streams ------------------------------------------------------------

    def start_stream(self, actor_id: str, title: str,
                     category: Optional[str] = None) -> Stream:
        """Go live; publishes stream.live and notifies the followers."""
        return build(Stream, self._get(
            "sh_stream_start", "sh_stream_json", "sh_stream_free",
            enc(actor_id), enc(title), enc(category)))

    def stop_stream(self, actor_id: str, stream_id: str) -> Stream:
        """End a stream (Conflict if it is offline already)."""
        return build(Stream, self._get(
            "sh_stream_stop", "sh_stream_json", "sh_stream_free",
            enc(actor_id), enc(stream_id)))

    def update_stream(self, actor_id: str, stream_id: str,
                      title: Optional[str] = None,
                      category: Optional[str] = None) -> Stream:
        """Change title and/or category (None keeps; category "" clears)."""
        return build(Stream, self._get(
            "sh_stream_update", "sh_stream_json", "sh_stream_free",
            enc(actor_id), enc(stream_id), enc(title), enc(category)))

    def get_stream(self, stream_id: str) -> Stream:
        return build(Stream, self._get(
            "sh_stream_get", "sh_stream_json", "sh_stream_free",
            enc(stream_id)))

    def live_streams(self, first: int = 20, after: Optional[str] = None,
                     category: Optional[str] = None) -> Page[Stream]:
        """Live streams, most viewers first."""
        return build_page(Stream, self._get(
            "sh_stream_live_list", "sh_stream_list_json",
            "sh_stream_list_free", int(first), enc(after), enc(category)))

    def search_streams(self, query: str, first: int = 20,
                       after: Optional[str] = None) -> Page[Stream]:
        """Streams whose title or category hold every word of @query."""
        return build_page(Stream, self._get(
            "sh_stream_search", "sh_stream_list_json", "sh_stream_list_free",
            enc(query), int(first), enc(after)))

    def set_viewers(self, stream_id: str, count: int) -> None:
        """Record the viewer count of a live stream (published at most once
        a second; see flush_viewers())."""
        self._do("sh_stream_set_viewers", enc(stream_id), int(count))

    def flush_viewers(self) -> int:
        with self._call() as h:
            return int(L.sh_stream_flush_viewers(h))

    def stream_stats(self, stream_id: str) -> StreamStats:
        return build(StreamStats, self._get(
            "sh_stream_stats_get", "sh_stream_stats_json",
            "sh_stream_stats_free", enc(stream_id)))

    def start_raid(self, actor_id: str, from_stream_id: str,
                   to_user_id: str) -> Raid:
        """Send the viewers of a live stream to another user."""
        return build(Raid, self._get(
            "sh_raid_start", "sh_raid_json", "sh_raid_free", enc(actor_id),
            enc(from_stream_id), enc(to_user_id)))

    # -- notifications ------------------------------------------------------

    def notifications(self, actor_id: str, first: int = 20,
                      after: Optional[str] = None,
                      unread_only: bool = False) -> NotificationPage:
        """The notifications of @actor_id, newest first."""
        return build_notification_page(self._get(
            "sh_notification_list", "sh_notification_list_json",
            "sh_notification_list_free", enc(actor_id), int(first),
            enc(after), bool(unread_only)))

    def unread_count(self, actor_id: str) -> int:
        n = c_int64(0)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = L.sh_notification_unread_count(h, enc(actor_id), byref(n),
                                                buf, len(buf))
        E.check(rc, buf)
        return int(n.value)

    def mark_read(self, actor_id: str,
                  ids: Optional[Sequence[str]] = None) -> int:
        """Mark @ids (all when None) read; returns how many changed."""
        arr = None
        count = 0
        if ids is not None:
            ids = list(ids)
            count = len(ids)
            arr = (c_char_p * max(count, 1))(*[enc(i) for i in ids])
        changed = c_int64(0)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = L.sh_notification_mark_read(
                h, enc(actor_id), arr, count, byref(changed), buf, len(buf))
        E.check(rc, buf)
        return int(changed.value)

    # -- chat ---------------------------------------------------------------

    def send_message(self, actor_id: str, stream_id: str,
                     text: Union[str, bytes]) -> ChatMessage:
        """Send @text to a stream's chat.  bytes go through unchecked (the
        library refuses bad UTF-8 with BadUtf8); the refusals raise Banned,
        TimedOut, FollowersOnly, SlowMode, TooLong, BadUtf8, Empty,
        BlockedTerm, RateLimited (with .retry_after in seconds)."""
        f = _need("sh_chat_send")
        data = text if isinstance(text, bytes) else \
            text.encode("utf-8", "surrogatepass")
        out = c_void_p()
        retry = c_int64(0)
        buf = _lib.errbuf()
        with self._call() as h:
            rc = f(h, enc(actor_id), enc(stream_id), data, len(data),
                   byref(out), byref(retry), buf, len(buf))
            E.check(rc, buf, int(retry.value))
            try:
                return build(ChatMessage,
                             _json_of("sh_chat_message_json", out.value))
            finally:
                L.sh_chat_message_free(out)

    def chat_history(self, stream_id: str, last: int = 50,
                     before: Optional[str] = None) -> ChatHistory:
        """The last messages of a stream's chat, newest last."""
        return build_history(self._get(
            "sh_chat_history", "sh_chat_message_list_json",
            "sh_chat_message_list_free", enc(stream_id), int(last),
            enc(before)))

    def delete_message(self, actor_id: str, message_id: str) -> None:
        self._do("sh_chat_delete", enc(actor_id), enc(message_id))

    # -- moderation ---------------------------------------------------------

    def timeout(self, actor_id: str, channel_id: str, user_id: str,
                seconds: int, reason: Optional[str] = None) -> None:
        """Time @user_id out of @channel_id's chat for @seconds."""
        self._do("sh_moderation_timeout", enc(actor_id), enc(channel_id),
                 enc(user_id), int(seconds), enc(reason))

    def ban(self, actor_id: str, channel_id: str, user_id: str,
            reason: Optional[str] = None) -> None:
        self._do("sh_moderation_ban", enc(actor_id), enc(channel_id),
                 enc(user_id), enc(reason))

    def unban(self, actor_id: str, channel_id: str, user_id: str) -> None:
        self._do("sh_moderation_unban", enc(actor_id), enc(channel_id),
                 enc(user_id))

    def add_moderator(self, actor_id: str, channel_id: str,
                      user_id: str) -> None:
        self._do("sh_moderation_add_moderator", enc(actor_id),
                 enc(channel_id), enc(user_id))

    def remove_moderator(self, actor_id: str, channel_id: str,
                         user_id: str) -> None:
        self._do("sh_moderation_remove_moderator", enc(actor_id),
                 enc(channel_id), enc(user_id))

    def is_moderator(self, channel_id: str, user_id: str) -> bool:
        return self._flag("sh_moderation_is_moderator", enc(channel_id),
                          enc(user_id))

    def update_chat_settings(self, actor_id: str, channel_id: str,
                             patch: Optional[Mapping[str, Any]] = None,
                             **kwargs: Any) -> ChatSettings:
        """Change some chat settings: slow_mode_seconds, followers_only,
        max_message_length, blocked_terms (as keywords or a mapping with
        either spelling); the others keep their value."""
        doc: Dict[str, Any] = {}
        for k, v in list((patch or {}).items()) + list(kwargs.items()):
            parts = k.split("_")
            doc[parts[0] + "".join(p.title() for p in parts[1:])] = v
        text = json.dumps(doc).encode()
        return build(ChatSettings, self._get(
            "sh_chat_settings_update", "sh_chat_settings_json",
            "sh_chat_settings_free", enc(actor_id), enc(channel_id), text,
            len(text)))

    def chat_settings(self, channel_id: str) -> ChatSettings:
        return build(ChatSettings, self._get(
            "sh_chat_settings_get", "sh_chat_settings_json",
            "sh_chat_settings_free", enc(channel_id)))

    def __repr__(self) -> str:
        return f"<streamhub.Hub {'closed' if self.closed else 'open'}>"


class _CallGuard:
    """Counts a call in flight so that close() waits for it, and refuses
    calls on a closed or closing hub."""

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def __enter__(self) -> int:
        hub = self.hub
        with hub._lock:
            if hub._handle is None or hub._closing:
                raise E.Closed(E.ECANCELED, "the hub is closed")
            hub._active += 1
            return hub._handle

    def __exit__(self, *exc: Any) -> None:
        hub = self.hub
        with hub._lock:
            hub._active -= 1
            if hub._active == 0:
                hub._lock.notify_all()
