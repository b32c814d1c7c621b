"""Loading libstreamhub and declaring every C prototype the binding uses.

The library is looked up, in order, at the path in the STREAMHUB_LIB
environment variable, in this package's directory, then on the system's
library path (ctypes.util.find_library, then the SONAME).

Every function gets its argtypes and restype here, so that ctypes never
guesses (an int-sized guess truncates 64-bit pointers).  Functions of areas
that a given build of the library lacks are left out: calling a method that
needs one raises NotSupported, and `has(name)` tells in advance.

Conventions kept by the callers in hub.py:
- handles are c_void_p, freed by the matching sh_*_free() right after their
  JSON or getters were read: no C handle ever outlives the call that made it,
  except the hub and subscriptions;
- strings go in as UTF-8 bytes (c_char_p); texts that may hold NUL bytes
  come back through c_void_p plus a length and ctypes.string_at();
- every errbuf is a fresh buffer of SH_ERRBUF_SIZE bytes, owned by the call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, CFUNCTYPE, Structure, c_bool, c_char, c_char_p,
                    c_int, c_int64, c_size_t, c_uint, c_uint32, c_uint64,
                    c_void_p)
from typing import Any, Dict, List, Optional, Sequence, Tuple

SH_ERRBUF_SIZE = 256
SH_EPOCH_SIZE = 40
SH_CHANNEL_MAX = 128
#: The major version of the C API this binding was written for.
ABI_MAJOR = 0

_SONAME = "libstreamhub.so.0"


class Position(Structure):
    """sh_position_t (frozen, 48 bytes)."""
    _fields_ = [("epoch", c_char * SH_EPOCH_SIZE), ("offset", c_uint64)]


class SubscribeResult(Structure):
    """sh_subscribe_result_t (frozen, 56 bytes)."""
    _fields_ = [("current", Position), ("recovered", c_int),
                ("reserved", c_int)]


assert ctypes.sizeof(Position) == 48
assert ctypes.sizeof(SubscribeResult) == 56

#: void (*sh_event_cb)(void *arg, const sh_event_t *ev, sh_err_t status)
EVENT_CB = CFUNCTYPE(None, c_void_p, c_void_p, c_int)

_P = c_void_p          # any opaque handle
_S = c_char_p          # NUL-terminated UTF-8 in; copied bytes out
_E = c_int             # sh_err_t
_EB = (c_char_p, c_size_t)   # errbuf, errbuf_len
_PP = POINTER(c_void_p)      # sh_x_t **out
_SZ = POINTER(c_size_t)

# name: (restype, argtypes)
_PROTOTYPES: Dict[str, Tuple[Any, Sequence[Any]]] = {
    # version, errors
    "sh_version": (c_char_p, ()),
    "sh_version_number": (c_uint32, ()),
    "sh_strerror": (c_char_p, (c_int,)),
    "sh_err_name": (c_char_p, (c_int,)),
    # config
    "sh_config_new": (_E, (_PP,)),
    "sh_config_free": (None, (_P,)),
    "sh_config_set": (_E, (_P, _S, _S) + _EB),
    "sh_config_get": (_E, (_P, _S, c_char_p, _SZ)),
    "sh_config_describe": (_E, (c_size_t, POINTER(c_char_p),
                                POINTER(c_char_p), POINTER(c_char_p))),
    # hub
    "sh_hub_open": (_E, (_P, _PP) + _EB),
    "sh_hub_close": (None, (_P,)),
    "sh_hub_poll": (c_int, (_P, c_int)),
    "sh_hub_fd": (c_int, (_P,)),
    # bus
    "sh_subscribe": (_E, (_P, _S, POINTER(Position), EVENT_CB, c_void_p,
                          _PP, POINTER(SubscribeResult)) + _EB),
    "sh_unsubscribe": (None, (_P,)),
    "sh_subscription_free": (None, (_P,)),
    "sh_publish": (_E, (_P, _S, _S, c_void_p, c_size_t,
                        POINTER(c_uint64)) + _EB),
    "sh_channel_position": (_E, (_P, _S, POINTER(Position)) + _EB),
    "sh_event_channel": (c_char_p, (_P,)),
    "sh_event_epoch": (c_char_p, (_P,)),
    "sh_event_offset": (c_uint64, (_P,)),
    "sh_event_type": (c_char_p, (_P,)),
    "sh_event_data": (c_void_p, (_P, _SZ)),
    "sh_event_time_ms": (c_int64, (_P,)),
    # auth
    "sh_auth_register": (_E, (_P, _S, _S, _S, _PP) + _EB),
    "sh_auth_login": (_E, (_P, _S, _S, _PP) + _EB),
    "sh_auth_refresh": (_E, (_P, _S, _PP) + _EB),
    "sh_auth_revoke": (_E, (_P, _S) + _EB),
    "sh_auth_verify": (_E, (_P, c_char_p, c_size_t, _PP)),
    "sh_auth_json": (c_void_p, (_P, _SZ)),
    "sh_auth_free": (None, (_P,)),
    "sh_user_get": (_E, (_P, _S, _S, _PP) + _EB),
    "sh_user_get_by_username": (_E, (_P, _S, _S, _PP) + _EB),
    "sh_user_json": (c_void_p, (_P, _SZ)),
    "sh_user_roles": (c_uint, (_P,)),
    "sh_user_free": (None, (_P,)),
    "sh_principal_user_id": (c_char_p, (_P,)),
    "sh_principal_username": (c_char_p, (_P,)),
    "sh_principal_roles": (c_uint, (_P,)),
    "sh_principal_exp": (c_int64, (_P,)),
    "sh_principal_free": (None, (_P,)),
    # follows
    "sh_follow": (_E, (_P, _S, _S, POINTER(c_bool)) + _EB),
    "sh_unfollow": (_E, (_P, _S, _S, POINTER(c_bool)) + _EB),
    "sh_follow_check": (_E, (_P, _S, _S, POINTER(c_bool)) + _EB),
    "sh_follow_counts": (_E, (_P, _S, POINTER(c_int64),
                              POINTER(c_int64)) + _EB),
    "sh_followers_list": (_E, (_P, _S, c_int, _S, _PP) + _EB),
    "sh_following_list": (_E, (_P, _S, c_int, _S, _PP) + _EB),
    "sh_user_list_json": (c_void_p, (_P, _SZ)),
    "sh_user_list_free": (None, (_P,)),
    "sh_channel_subscribe": (_E, (_P, _S, _S, c_int, _PP) + _EB),
    "sh_channel_subscription_json": (c_void_p, (_P, _SZ)),
    "sh_channel_subscription_free": (None, (_P,)),
    # streams
    "sh_stream_start": (_E, (_P, _S, _S, _S, _PP) + _EB),
    "sh_stream_stop": (_E, (_P, _S, _S, _PP) + _EB),
    "sh_stream_update": (_E, (_P, _S, _S, _S, _S, _PP) + _EB),
    "sh_stream_get": (_E, (_P, _S, _PP) + _EB),
    "sh_stream_live_list": (_E, (_P, c_int, _S, _S, _PP) + _EB),
    "sh_stream_search": (_E, (_P, _S, c_int, _S, _PP) + _EB),
    "sh_stream_set_viewers": (_E, (_P, _S, c_int64) + _EB),
    "sh_stream_flush_viewers": (c_int, (_P,)),
    "sh_stream_json": (c_void_p, (_P, _SZ)),
    "sh_stream_free": (None, (_P,)),
    "sh_stream_list_json": (c_void_p, (_P, _SZ)),
    "sh_stream_list_free": (None, (_P,)),
    "sh_stream_stats_get": (_E, (_P, _S, _PP) + _EB),
    "sh_stream_stats_json": (c_void_p, (_P, _SZ)),
    "sh_stream_stats_free": (None, (_P,)),
    "sh_raid_start": (_E, (_P, _S, _S, _S, _PP) + _EB),
    "sh_raid_json": (c_void_p, (_P, _SZ)),
    "sh_raid_free": (None, (_P,)),
    # notifications
    "sh_notification_list": (_E, (_P, _S, c_int, _S, c_bool, _PP) + _EB),
    "sh_notification_unread_count": (_E, (_P, _S, POINTER(c_int64)) + _EB),
    "sh_notification_mark_read": (_E, (_P, _S, POINTER(c_char_p), c_size_t,
                                       POINTER(c_int64)) + _EB),
    "sh_notification_list_json": (c_void_p, (_P, _SZ)),
    "sh_notification_list_free": (None, (_P,)),
    # chat
    "sh_chat_send": (_E, (_P, _S, _S, c_void_p, c_size_t, _PP,
                          POINTER(c_int64)) + _EB),
    "sh_chat_history": (_E, (_P, _S, c_int, _S, _PP) + _EB),
    "sh_chat_delete": (_E, (_P, _S, _S) + _EB),
    "sh_chat_message_json": (c_void_p, (_P, _SZ)),
    "sh_chat_message_free": (None, (_P,)),
    "sh_chat_message_list_json": (c_void_p, (_P, _SZ)),
    "sh_chat_message_list_free": (None, (_P,)),
    # moderation
    "sh_moderation_timeout": (_E, (_P, _S, _S, _S, c_int64, _S) + _EB),
    "sh_moderation_ban": (_E, (_P, _S, _S, _S, _S) + _EB),
    "sh_moderation_unban": (_E, (_P, _S, _S, _S) + _EB),
    "sh_moderation_add_moderator": (_E, (_P, _S, _S, _S) + _EB),
    "sh_moderation_remove_moderator": (_E, (_P, _S, _S, _S) + _EB),
    "sh_moderation_is_moderator": (_E, (_P, _S, _S, POINTER(c_bool)) + _EB),
    "sh_chat_settings_update": (_E, (_P, _S, _S, c_void_p, c_size_t, _PP)
                                + _EB),
    "sh_chat_settings_get": (_E, (_P, _S, _PP) + _EB),
    "sh_chat_settings_json": (c_void_p, (_P, _SZ)),
    "sh_chat_settings_free": (None, (_P,)),
}

#: Functions without which the binding cannot work at all.
_REQUIRED = ("sh_version", "sh_version_number", "sh_strerror", "sh_err_name",
             "sh_config_new", "sh_config_free", "sh_config_set",
             "sh_config_describe", "sh_hub_open", "sh_hub_close",
             "sh_hub_poll", "sh_hub_fd")


def _candidates() -> List[str]:
    out: List[str] = []
    env = os.environ.get("STREAMHUB_LIB")
    if env:
        out.append(env)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in (_SONAME, "libstreamhub.so"):
        path = os.path.join(here, name)
        if os.path.exists(path):
            out.append(path)
    found = ctypes.util.find_library("streamhub")
    if found:
        out.append(found)
    out.append(_SONAME)
    return out


def _load() -> Tuple[ctypes.CDLL, str]:
    errors: List[str] = []
    for cand in _candidates():
        try:
            return ctypes.CDLL(cand), cand
        except OSError as exc:
            errors.append(f"{cand}: {exc}")
            # An explicit STREAMHUB_LIB that fails is an error, not a hint.
            if cand == os.environ.get("STREAMHUB_LIB"):
                break
    raise ImportError("cannot load libstreamhub (set STREAMHUB_LIB to its "
                      "path): " + "; ".join(errors))


lib, path = _load()
_missing: List[str] = []

for _name, (_res, _args) in _PROTOTYPES.items():
    try:
        _fn = getattr(lib, _name)
    except AttributeError:
        _missing.append(_name)
        continue
    _fn.restype = _res
    _fn.argtypes = list(_args)

for _name in _REQUIRED:
    if _name in _missing:
        raise ImportError(f"{path} lacks {_name}: not a libstreamhub")

if (lib.sh_version_number() >> 16) != ABI_MAJOR:
    raise ImportError(f"{path} is libstreamhub "
                      f"{lib.sh_version().decode()}, this binding needs "
                      f"major version {ABI_MAJOR}")

MISSING = frozenset(_missing)


def has(name: str) -> bool:
    """True when the loaded library exports the C function @name."""
    return name in _PROTOTYPES and name not in MISSING


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    v: bytes = lib.sh_version()
    return v.decode()


def errbuf() -> ctypes.Array:
    """A fresh error buffer for one call."""
    return ctypes.create_string_buffer(SH_ERRBUF_SIZE)


def enc(s: Optional[str]) -> Optional[bytes]:
    """Python text to NUL-terminated UTF-8 (None stays NULL).

    An embedded NUL would silently cut the C string, so it is refused here
    rather than letting a truncated value through.
    """
    if s is None:
        return None
    if isinstance(s, bytes):
        b = s
    else:
        b = str(s).encode("utf-8", "surrogatepass")
    if b"\x00" in b:
        raise ValueError("string contains a NUL character")
    return b


def text_at(fn: Any, handle: int) -> str:
    """Call an `const char *sh_x_json(const sh_x_t *, size_t *len)` getter
    and copy its text out."""
    n = c_size_t(0)
    p = fn(handle, ctypes.byref(n))
    if not p:
        return ""
    return ctypes.string_at(p, n.value).decode("utf-8")
