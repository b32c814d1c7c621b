#!/usr/bin/env python3
"""Dependencies point one way (DESIGN.md, "Layout"): check every #include.

Inside the library: gateway -> graphql -> services -> (store, bus) -> core,
and the gateway also uses the services and the bus.  The core knows no
domain; nothing above the services touches the store.  server/, bindings/
and examples/ (and the contract tests) use the public headers only.

An include is allowed when the header's area is the includer's own area or
one it may depend on, and, for a private header (libstreamhub/<area>/), when
that area exports it to the others (EXPORTED).  What a header includes in
turn counts too: an include is wrong when anything it pulls in, directly or
through other headers, is out of bounds for the includer (core_int.h once
included the umbrella streamhub/streamhub.h, and with it every domain
header into core, store and bus).

usage: check_layers.py SRCDIR
Prints one line per wrong arrow, "file:line: area -> area (header...)",
and exits 1 when there is any.
"""

import os
import re
import sys

# Which areas each area may include (its own included).
ALLOWED = {
    'core': {'core'},
    'store': {'store', 'core'},
    'bus': {'bus', 'core'},
    'services': {'services', 'store', 'bus', 'core'},
    'graphql': {'graphql', 'services', 'core'},
    'gateway': {'gateway', 'graphql', 'services', 'bus', 'core'},
}

# The private headers an area offers to the areas allowed above it; its
# other headers are its own.  The core's are the library's base: all of
# them.
EXPORTED = {
    'core': None,   # every header
    'store': {'store_int.h'},
    'bus': {'bus_int.h'},
    'services': {'hub_int.h', 'export_int.h'},
    'graphql': {'graphql_int.h', 'engine_int.h'},
    'gateway': set(),
}

# The area each public header belongs to.  A new public header must be
# added here (the check fails on an unknown one).
PUBLIC = {
    'version.h': 'core', 'types.h': 'core', 'error.h': 'core',
    'log.h': 'core', 'config.h': 'core',
    'bus.h': 'bus',
    'hub.h': 'services', 'auth.h': 'services', 'follows.h': 'services',
    'streams.h': 'services', 'notifications.h': 'services',
    'chat.h': 'services', 'moderation.h': 'services', 'users.h': 'services',
    'graphql.h': 'graphql',
    'gateway.h': 'gateway',
    'streamhub.h': 'umbrella',   # everything: programs only
}

# Trees of programs that use the public headers only (the contract tests
# link the shared library: its internals are out of their reach anyway).
OUTSIDE = ('server', 'bindings', 'examples', 'tests/contract')
SOURCE_EXT = ('.c', '.h', '.cc', '.cpp', '.hpp', '.go', '.in')
SKIP_DIRS = {'node_modules', '.git', '__pycache__', 'vendor'}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


class Checker:
    def __init__(self, src):
        self.src = os.path.realpath(src)
        self.inc = os.path.join(self.src, 'include')
        self.lib = os.path.join(self.src, 'libstreamhub')
        self.errors = []
        self.cache = {}

    def rel(self, path):
        return os.path.relpath(path, self.src)

    def includes(self, path):
        """[(line number, header path or None, text)] of @path."""
        if path in self.cache:
            return self.cache[path]
        out = []
        try:
            with open(path, encoding='utf-8', errors='replace') as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE_RE.match(line)
                    if m:
                        out.append((n, self.resolve(path, m.group(1),
                                                    m.group(2)),
                                    m.group(2)))
        except OSError:
            pass
        self.cache[path] = out
        return out

    def resolve(self, includer, kind, name):
        """The project file @name names, or None (system, generated)."""
        cands = []
        if kind == '"':
            cands.append(os.path.join(os.path.dirname(includer), name))
        cands += [os.path.join(self.inc, name), os.path.join(self.lib, name)]
        for c in cands:
            for p in (c, c + '.in'):   # version.h is generated from .in
                if os.path.isfile(p):
                    return os.path.realpath(p)
        return None

    def owner(self, path):
        """(area, kind) of a project file: kind is 'public', 'private'
        or 'outside'; area None when the file is none of these."""
        r = self.rel(path).split(os.sep)
        if r[0] == 'include' and len(r) == 3 and r[1] == 'streamhub':
            name = r[2][:-3] if r[2].endswith('.in') else r[2]
            return PUBLIC.get(name, '?' + name), 'public'
        if r[0] == 'libstreamhub' and len(r) >= 3:
            return r[1], 'private'
        for d in OUTSIDE:
            if self.rel(path).startswith(d + os.sep):
                return d, 'outside'
        return None, None

    def why_not(self, area, kind, header):
        """None when a file of @area (@kind) may include @header, else a
        short reason."""
        h_area, h_kind = self.owner(header)
        if h_area is None:
            return None
        if h_kind == 'public' and h_area.startswith('?'):
            return ('unknown public header %s: give it an area in '
                    'tests/abi/check_layers.py' % self.rel(header))
        if kind == 'outside':
            if h_kind == 'private':
                return 'a program uses the public headers only'
            return None
        if h_area == area:
            return None
        if h_area == 'umbrella':
            return 'the umbrella header is for programs, not the library'
        if h_area not in ALLOWED.get(area, ()):
            return '%s may not depend on %s' % (area, h_area)
        if h_kind == 'private' and kind != 'public':
            exported = EXPORTED.get(h_area, set())
            if exported is not None and \
                    os.path.basename(header) not in exported:
                return '%s keeps %s to itself' % (
                    h_area, os.path.basename(header))
        elif h_kind == 'private':
            return 'a public header includes a private one'
        return None

    def reach(self, header, seen):
        """Every project header @header pulls in: [(header, chain)]."""
        out = []
        stack = [(header, [header])]
        while stack:
            h, chain = stack.pop()
            for _, inc, _ in self.includes(h):
                if inc is None or inc in seen:
                    continue
                seen.add(inc)
                out.append((inc, chain + [inc]))
                stack.append((inc, chain + [inc]))
        return out

    def check_file(self, path):
        area, kind = self.owner(path)
        if area is None or area == 'umbrella':
            return
        for line, header, text in self.includes(path):
            if header is None:
                continue
            reason = self.why_not(area, kind, header)
            if reason:
                self.errors.append('%s:%d: %s -> %s: %s' % (
                    self.rel(path), line, area, text, reason))
                continue
            h_area, _ = self.owner(header)
            if h_area == area:
                continue   # its own header: checked as a file itself
            for inc, chain in self.reach(header, {header}):
                reason = self.why_not(area, kind, inc)
                if reason:
                    self.errors.append(
                        '%s:%d: %s -> %s pulls in %s (%s): %s' % (
                            self.rel(path), line, area, text,
                            self.rel(inc),
                            ' -> '.join(self.rel(c) for c in chain),
                            reason))

    def files(self):
        roots = [os.path.join(self.src, d)
                 for d in ('libstreamhub', 'include') + OUTSIDE]
        for root in roots:
            for d, dirs, names in os.walk(root):
                dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
                for n in sorted(names):
                    if n.endswith(SOURCE_EXT):
                        yield os.path.join(d, n)

    def run(self):
        n = 0
        for path in self.files():
            n += 1
            self.check_file(os.path.realpath(path))
        return n


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[0])
        print('usage: check_layers.py SRCDIR')
        return 2
    c = Checker(sys.argv[1])
    n = c.run()
    for e in c.errors:
        print(e)
    if c.errors:
        print('%d wrong arrows in %d files (DESIGN.md, "Layout")'
              % (len(c.errors), n))
        return 1
    print('%d files: every #include points down (DESIGN.md, "Layout")' % n)
    return 0


if __name__ == '__main__':
    sys.exit(main())
