"""Fixtures of the binding's tests.

The library comes from STREAMHUB_LIB (meson test sets it to the built
libstreamhub.so), else the usual search of streamhub._lib.  Registering a
user costs one Argon2id hash (about a tenth of a second, more under
sanitizers), so the session shares one hub and a few users; tests that
change a channel's state make their own broadcaster.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Callable, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import streamhub  # noqa: E402
from streamhub import AuthPayload, Hub  # noqa: E402

SECRET = "test-secret-" + "s" * 32
PASSWORD = "correct horse battery"

_seq = itertools.count(1)


def hub_kwargs(**extra: object) -> dict:
    kw = dict(store="sqlite::memory:", bus="local", jwt_secret=SECRET,
              log_level="error")
    kw.update(extra)
    return kw


@pytest.fixture(scope="session")
def hub() -> Iterator[Hub]:
    h = Hub(**hub_kwargs(chat_rate_limit=100000))  # type: ignore[arg-type]
    yield h
    h.close()


@pytest.fixture(scope="session")
def make_user(hub: Hub) -> Callable[[str], AuthPayload]:
    def make(prefix: str = "u") -> AuthPayload:
        n = next(_seq)
        name = f"{prefix}{n}"[:25]
        return hub.register(name, f"{name}@example.com", PASSWORD)
    return make


@pytest.fixture(scope="session")
def alice(make_user: Callable[[str], AuthPayload]) -> AuthPayload:
    return make_user("alice")


@pytest.fixture(scope="session")
def bob(make_user: Callable[[str], AuthPayload]) -> AuthPayload:
    return make_user("bob")


@pytest.fixture(scope="session")
def carol(make_user: Callable[[str], AuthPayload]) -> AuthPayload:
    return make_user("carol")


def needs(name: str) -> pytest.MarkDecorator:
    """Skip when the loaded library lacks the C function @name."""
    return pytest.mark.skipif(not streamhub._lib.has(name),
                              reason=f"libstreamhub without {name}")


def _in_ci() -> bool:
    return os.environ.get("CI", "") not in ("", "0", "false")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a test that did not run: in CI (CI=true) it fails
    the run; elsewhere the run exits 77 so that meson reports it skipped,
    not passed (scripts/test.sh prints it in its summary).  Each skip and
    its reason is printed."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = list(tr.stats.get("skipped", [])) if tr is not None else []
    if not skipped:
        return
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) \
            else str(rep.longrepr)
        print(f"\nSKIPPED {rep.nodeid}: {reason}")
    if exitstatus == 0:
        session.exitstatus = 1 if _in_ci() else 77
        if _in_ci():
            print(f"{len(skipped)} skipped in CI: a failure")
