"""Result types: plain dataclasses built from the JSON the library returns.

The C API's result handles carry the JSON of the GraphQL types of
api/schema.graphql; the binding parses it with json.loads and maps each
camelCase member to a snake_case attribute.  Members this version does not
know are ignored, so that a newer library never breaks an older binding.
Times stay RFC 3339 strings as the API sends them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import (Any, Dict, Generic, List, Optional, Tuple, Type,
                    TypeVar)

T = TypeVar("T")

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """camelCase to snake_case ("viewerCount" -> "viewer_count")."""
    return _CAMEL.sub("_", name).lower()


def _build(cls: Type[T], obj: Optional[Dict[str, Any]]) -> T:
    """Make a @cls from a JSON object, recursing into the nested types
    that the class names in its `_nested` mapping."""
    if obj is None:
        raise ValueError(f"no JSON object for {cls.__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    nested: Dict[str, Any] = getattr(cls, "_nested", {})
    kwargs: Dict[str, Any] = {}
    for key, value in obj.items():
        attr = snake(key)
        if attr == "from":
            attr = "from_"
        if attr not in names:
            continue
        sub = nested.get(attr)
        if sub is not None and value is not None:
            if isinstance(sub, list):
                value = [_build(sub[0], v) for v in value]
            else:
                value = _build(sub, value)
        kwargs[attr] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class UserRef:
    """A user as other objects embed it ({"id","username"})."""
    id: str = ""
    username: str = ""


@dataclass(frozen=True)
class User:
    id: str = ""
    username: str = ""
    email: Optional[str] = None
    created_at: str = ""


@dataclass(frozen=True)
class AuthPayload:
    access_token: str = ""
    refresh_token: str = ""
    expires_in: int = 0
    user: User = field(default_factory=User)
    _nested = {"user": User}


@dataclass(frozen=True)
class Principal:
    """Whom an access token names (sh_auth_verify())."""
    user_id: str
    username: str
    roles: int
    exp: int


@dataclass(frozen=True)
class Stream:
    id: str = ""
    broadcaster: UserRef = field(default_factory=UserRef)
    title: str = ""
    category: Optional[str] = None
    status: str = ""
    viewer_count: int = 0
    started_at: Optional[str] = None
    ended_at: Optional[str] = None
    _nested = {"broadcaster": UserRef}

    @property
    def is_live(self) -> bool:
        return self.status == "LIVE"


@dataclass(frozen=True)
class StreamStats:
    peak_viewers: int = 0
    chat_messages: int = 0
    unique_chatters: int = 0
    new_followers: int = 0
    messages_per_minute: int = 0


@dataclass(frozen=True)
class StreamRef:
    """A stream as other objects embed it ({"id"})."""
    id: str = ""


@dataclass(frozen=True)
class Raid:
    """A raid; `from_` is the raiding stream ("from" in the JSON)."""
    id: str = ""
    from_: StreamRef = field(default_factory=StreamRef)
    to: UserRef = field(default_factory=UserRef)
    viewer_count: int = 0
    created_at: str = ""
    _nested = {"from_": StreamRef, "to": UserRef}


@dataclass(frozen=True)
class ChannelSubscription:
    id: str = ""
    subscriber: UserRef = field(default_factory=UserRef)
    channel: UserRef = field(default_factory=UserRef)
    tier: int = 1
    created_at: str = ""
    _nested = {"subscriber": UserRef, "channel": UserRef}


@dataclass(frozen=True)
class Notification:
    id: str = ""
    type: str = ""
    data: Any = None
    read: bool = False
    created_at: str = ""


@dataclass(frozen=True)
class ChatMessage:
    id: str = ""
    stream_id: str = ""
    author: UserRef = field(default_factory=UserRef)
    text: str = ""
    offset: int = 0
    created_at: str = ""
    deleted: bool = False
    _nested = {"author": UserRef}


@dataclass(frozen=True)
class ChatSettings:
    slow_mode_seconds: int = 0
    followers_only: bool = False
    max_message_length: int = 500
    blocked_terms: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a connection: items, the cursor of the next page (None
    on the last) and the total count of matches."""
    items: List[T]
    next_cursor: Optional[str] = None
    total_count: int = 0

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class NotificationPage(Page[Notification]):
    unread_count: int = 0


@dataclass(frozen=True)
class ChatHistory:
    """A page of chat history, newest last."""
    items: List[ChatMessage]
    cursors: List[str] = field(default_factory=list)
    has_previous_page: bool = False
    has_next_page: bool = False
    start_cursor: Optional[str] = None
    end_cursor: Optional[str] = None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Position:
    """A place in a channel: its epoch and the offset of the last event
    seen.  Pass one (or an (epoch, offset) tuple) as `since`."""
    epoch: str
    offset: int

    def as_tuple(self) -> Tuple[str, int]:
        return (self.epoch, self.offset)


@dataclass(frozen=True)
class Event:
    """One bus event; `data` is its parsed JSON."""
    channel: str
    epoch: str
    offset: int
    type: str
    data: Any
    time_ms: int = 0

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)


def build(cls: Type[T], obj: Dict[str, Any]) -> T:
    return _build(cls, obj)


def build_page(item_cls: Type[T], obj: Dict[str, Any]) -> Page[T]:
    return Page(items=[_build(item_cls, i) for i in obj.get("items", [])],
                next_cursor=obj.get("nextCursor"),
                total_count=int(obj.get("totalCount", 0)))


def build_notification_page(obj: Dict[str, Any]) -> NotificationPage:
    return NotificationPage(
        items=[_build(Notification, i) for i in obj.get("items", [])],
        next_cursor=obj.get("nextCursor"),
        total_count=int(obj.get("totalCount", 0)),
        unread_count=int(obj.get("unreadCount", 0)))


def build_history(obj: Dict[str, Any]) -> ChatHistory:
    return ChatHistory(
        items=[_build(ChatMessage, i) for i in obj.get("items", [])],
        cursors=list(obj.get("cursors", [])),
        has_previous_page=bool(obj.get("hasPreviousPage", False)),
        has_next_page=bool(obj.get("hasNextPage", False)),
        start_cursor=obj.get("startCursor"),
        end_cursor=obj.get("endCursor"))
