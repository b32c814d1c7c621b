"""StreamHub for Python: a ctypes binding of libstreamhub's C API.

    from streamhub import Hub
    with Hub(store="sqlite::memory:") as hub:
        alice = hub.register("alice", "alice@example.com", "a long password")
        stream = hub.start_stream(alice.user.id, "Speedrun")
        with hub.subscribe(f"chat:{stream.id}") as sub:
            hub.send_message(alice.user.id, stream.id, "hello")
            print(next(sub).data["text"])

See hub.py for the threading model and errors.py for the exceptions.
"""

from ._lib import version as library_version
from .errors import (Banned, BadUtf8, BlockedTerm, Busy, BusError, Closed,
                     Conflict, Empty, FollowersOnly, Forbidden,
                     InvalidArgument, NotFound, NotSupported, OutOfMemory,
                     RateLimited, SlowMode, StoreError, StreamHubError,
                     TimedOut, Timeout, TooLarge, TooLong, Unauthenticated,
                     error_class)
from .hub import Hub, Subscription
from .models import (AuthPayload, ChannelSubscription, ChatHistory,
                     ChatMessage, ChatSettings, Event, Notification,
                     NotificationPage, Page, Position, Principal, Raid,
                     Stream, StreamRef, StreamStats, User, UserRef)

__version__ = "0.1.0"

__all__ = [
    "Hub", "Subscription", "library_version", "error_class",
    "StreamHubError", "OutOfMemory", "InvalidArgument", "NotFound",
    "Conflict", "Forbidden", "Unauthenticated", "RateLimited", "StoreError",
    "BusError", "TooLarge", "Busy", "Closed", "NotSupported", "Timeout",
    "Banned", "TimedOut", "FollowersOnly", "SlowMode", "TooLong", "BadUtf8",
    "BlockedTerm", "Empty",
    "AuthPayload", "ChannelSubscription", "ChatHistory", "ChatMessage",
    "ChatSettings", "Event", "Notification", "NotificationPage", "Page",
    "Position", "Principal", "Raid", "Stream", "StreamRef", "StreamStats",
    "User",
    "UserRef",
]
