"""Opening, configuring and closing a hub; loading the library."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time

import pytest

from streamhub import (Closed, Hub, InvalidArgument, StreamHubError, _lib,
                       library_version)
from conftest import hub_kwargs


def test_library_loaded_and_versioned() -> None:
    assert library_version().count(".") == 2
    assert _lib.lib.sh_version_number() >> 16 == _lib.ABI_MAJOR
    if os.environ.get("STREAMHUB_LIB"):
        assert _lib.path == os.environ["STREAMHUB_LIB"]


def test_frozen_structs_match_the_header() -> None:
    assert ctypes.sizeof(_lib.Position) == 48
    assert ctypes.sizeof(_lib.SubscribeResult) == 56


def test_every_prototype_is_declared() -> None:
    for name in _lib._PROTOTYPES:
        if _lib.has(name):
            fn = getattr(_lib.lib, name)
            assert fn.argtypes is not None, name


def test_bad_library_path_is_an_import_error(tmp_path) -> None:
    env = dict(os.environ, STREAMHUB_LIB=str(tmp_path / "nope.so"),
               PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    r = subprocess.run([sys.executable, "-c", "import streamhub"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "cannot load libstreamhub" in r.stderr


def test_context_manager_and_idempotent_close() -> None:
    with Hub(**hub_kwargs()) as h:
        assert not h.closed
        assert h.fileno() >= 0
    assert h.closed
    h.close()
    h.close()
    with pytest.raises(Closed) as ei:
        h.get_stream("x")
    assert ei.value.code == 13 and ei.value.name == "SH_ECANCELED"
    with pytest.raises(Closed):
        h.poll(0)


def test_config_kwargs_map_dashes_and_dots() -> None:
    # chat.max-message-length and bus.history-size through kwargs, and a
    # verbatim key through the mapping.
    with Hub(**hub_kwargs(chat_max_message_length=2000,
                          bus_history_size=0),
             config={"allow-anonymous": False}) as h:
        assert h.publish("app:x", "t", 1) == 1


@pytest.mark.parametrize("kw,needle", [
    ({"no_such_key": 1}, "no_such_key"),
    ({"chat_max_message_length": 5000}, "chat.max-message-length"),
    ({"chat_max_message_length": 0}, "chat.max-message-length"),
    ({"log_level": "loud"}, "log-level"),
    ({"jwt_ttl_seconds": "1\x00"}, None),
])
def test_bad_config_names_the_key(kw, needle) -> None:
    with pytest.raises((InvalidArgument, ValueError)) as ei:
        Hub(**hub_kwargs(**kw))
    if needle is not None:
        assert needle in str(ei.value)


def test_bad_store_is_a_store_error(tmp_path) -> None:
    with pytest.raises(StreamHubError) as ei:
        Hub(**hub_kwargs(store=f"sqlite:{tmp_path}/no/such/dir/x.db"))
    assert ei.value.name in ("SH_ESTORE", "SH_EINVAL", "SH_EIO")
    assert ei.value.message


def test_close_waits_for_calls_on_other_threads(make_user) -> None:
    h = Hub(**hub_kwargs())
    started = threading.Event()
    errors = []

    def slow() -> None:
        started.set()
        try:
            h.register("slowpoke", "slow@example.com", "password123")
        except Closed:
            pass   # began after close: refused cleanly
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    started.wait()
    time.sleep(0.01)
    h.close()
    t.join()
    assert not errors
    assert h.closed


def test_unclosed_hub_warns_and_closes() -> None:
    h = Hub(**hub_kwargs())
    with pytest.warns(ResourceWarning):
        h.__del__()
    assert h.closed
