#!/usr/bin/env python3
"""A terminal dashboard of live streams and one stream's chat.

It subscribes to `live` (streams going live and offline) and to the chat
of one stream, and redraws a table of the live streams with their viewer
counts and the last chat lines whenever something happens (at most a few
times a second).  Everything runs on one thread: the subscriptions are
served by polling the hub, the way the binding wants it.

    dashboard.py --demo                  a self-contained demo: its own
                                         in-memory hub, users, streams and
                                         chat; runs a few seconds, exits 0
    dashboard.py --store sqlite:streamhub.db --stream <id>
                                         watch a hub's store (embedded)

The library is found through STREAMHUB_LIB or the system's library path.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import secrets
import sys
import time
from typing import Deque, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))

from streamhub import (Event, Hub, RateLimited, Stream,  # noqa: E402
                       StreamHubError)


class Dashboard:
    def __init__(self, hub: Hub, chat_stream: Optional[str],
                 lines: int = 8, out=sys.stdout, ansi: bool = True) -> None:
        self.hub = hub
        self.out = out
        self.ansi = ansi
        self.streams: Dict[str, Stream] = {}
        self.chat: Deque[str] = collections.deque(maxlen=lines)
        self.events = 0
        self.dirty = True
        self.live = hub.subscribe("live", callback=self.on_live)
        self.chat_sub = None
        if chat_stream is not None:
            self.watch_chat(chat_stream)
        for s in hub.live_streams(first=100):
            self.streams[s.id] = s

    def watch_chat(self, stream_id: str) -> None:
        if self.chat_sub is not None:
            self.chat_sub.close()
        self.chat_sub = self.hub.subscribe(f"chat:{stream_id}",
                                           callback=self.on_chat)
        for m in self.hub.chat_history(stream_id, last=self.chat.maxlen):
            self.chat.append(self.fmt(m.author.username, m.text, m.deleted))

    @staticmethod
    def fmt(user: str, text: str, deleted: bool = False) -> str:
        return f"{user:>14}: {'<deleted>' if deleted else text}"

    def on_live(self, ev: Event) -> None:
        self.events += 1
        sid = ev.data["id"]
        if ev.type == "stream.live":
            self.streams[sid] = self.hub.get_stream(sid)
        elif ev.type == "stream.offline":
            self.streams.pop(sid, None)
        self.dirty = True

    def on_chat(self, ev: Event) -> None:
        self.events += 1
        d = ev.data
        if ev.type == "chat.message":
            self.chat.append(self.fmt(d["author"]["username"], d["text"]))
        elif ev.type == "chat.message_deleted":
            self.chat.append(self.fmt("*", "a message was deleted"))
        elif ev.type in ("chat.user_banned", "chat.user_timed_out"):
            self.chat.append(self.fmt("*", f"{ev.type[10:]} {d['userId']}"))
        self.dirty = True

    def refresh_counts(self) -> None:
        for sid in list(self.streams):
            try:
                self.streams[sid] = self.hub.get_stream(sid)
            except StreamHubError:
                self.streams.pop(sid, None)

    def render(self) -> str:
        rows = sorted(self.streams.values(),
                      key=lambda s: (-s.viewer_count, s.title))
        w = 72
        out: List[str] = []
        out.append(f"StreamHub live dashboard   {time.strftime('%H:%M:%S')}"
                   f"   {len(rows)} live   {self.events} events")
        out.append("=" * w)
        out.append(f"{'VIEWERS':>8}  {'BROADCASTER':<16}{'CATEGORY':<14}"
                   "TITLE")
        out.append("-" * w)
        for s in rows[:15]:
            out.append(f"{s.viewer_count:>8}  {s.broadcaster.username:<16}"
                       f"{(s.category or '-')[:13]:<14}{s.title[:32]}")
        if not rows:
            out.append("   (nobody is live)")
        out.append("-" * w)
        out.append("chat:")
        out.extend(self.chat or ["   (quiet)"])
        return "\n".join(out)

    def draw(self) -> None:
        if self.ansi:
            self.out.write("\x1b[H\x1b[2J")
        else:
            self.out.write("\n")
        self.out.write(self.render() + "\n")
        self.out.flush()
        self.dirty = False

    def run(self, seconds: Optional[float], tick=None,
            redraw_every: float = 0.25) -> None:
        end = None if seconds is None else time.monotonic() + seconds
        last_draw = 0.0
        last_counts = time.monotonic()
        while end is None or time.monotonic() < end:
            self.hub.poll(0.05)           # runs on_live / on_chat here
            now = time.monotonic()
            if tick is not None:
                tick()
            if now - last_counts >= 1.0:
                self.refresh_counts()
                last_counts = now
                self.dirty = True
            if self.dirty and now - last_draw >= redraw_every:
                self.draw()
                last_draw = now
        self.hub.poll(0)
        self.draw()

    def close(self) -> None:
        self.live.close()
        if self.chat_sub is not None:
            self.chat_sub.close()


def demo(seconds: float, ansi: bool) -> int:
    lines = ["gg", "what a run!", "PogChamp", "first time here \U0001F44B",
             "any% or 100%?", "hype \U0001F525", "lol", "nice split"]
    with Hub(store="sqlite::memory:", jwt_secret=secrets.token_hex(32),
             log_level="error") as hub:
        pw = "demo password"
        casters = [hub.register(n, f"{n}@example.com", pw).user
                   for n in ("speedy", "chef_ana")]
        viewers = [hub.register(n, f"{n}@example.com", pw).user
                   for n in ("viewer_1", "viewer_2")]
        main = hub.start_stream(casters[0].id, "Any% world record attempts",
                                "speedrun")
        dash = Dashboard(hub, main.id, ansi=ansi)
        rng = random.Random(7)
        state = {"next": time.monotonic(), "second": None, "sent": 0}

        def tick() -> None:
            now = time.monotonic()
            if now < state["next"]:
                return
            state["next"] = now + 0.2
            if state["second"] is None and dash.events >= 3:
                state["second"] = hub.start_stream(
                    casters[1].id, "Cooking ramen from scratch", "food")
            for s in list(dash.streams.values()):
                hub.set_viewers(s.id, rng.randint(10, 5000))
            who = rng.choice(viewers + [casters[0]])
            try:
                hub.send_message(who.id, main.id, rng.choice(lines))
                state["sent"] += 1
            except RateLimited:
                pass

        dash.run(seconds, tick=tick)
        if state["second"] is not None:
            hub.stop_stream(casters[1].id, state["second"].id)
        hub.poll(0.2)
        dash.close()
        # The demo checks itself, so that running it is a test.
        ok = (state["sent"] > 0 and len(dash.chat) > 0 and
              main.id in dash.streams and dash.events >= state["sent"])
        print(f"demo: {state['sent']} messages sent, {dash.events} events "
              f"received, {len(dash.streams)} live at the end: "
              f"{'ok' if ok else 'FAILED'}")
        return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo", action="store_true",
                   help="run a self-contained demo and exit")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after this long (demo: 3)")
    p.add_argument("--store", default="sqlite:streamhub.db")
    p.add_argument("--stream", help="the stream whose chat to show")
    p.add_argument("--plain", action="store_true",
                   help="no ANSI screen clearing (logs, pipes)")
    a = p.parse_args(argv)
    ansi = not a.plain and sys.stdout.isatty()
    if a.demo:
        return demo(a.seconds if a.seconds is not None else 3.0, ansi)
    with Hub(store=a.store, log_level="warn") as hub:
        dash = Dashboard(hub, a.stream, ansi=ansi)
        try:
            dash.run(a.seconds)
        except KeyboardInterrupt:
            pass
        dash.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
