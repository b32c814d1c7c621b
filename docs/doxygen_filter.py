#!/usr/bin/env python3
"""Doxygen input filter for include/streamhub/*.h.

The public headers use plain C comments (STYLE.md), which Doxygen ignores.
This filter, run on a copy of each header as Doxygen reads it, turns:
  - the file's opening comment into the file's documentation (@file);
  - every other comment starting a line into a doc comment for what follows;
  - a comment trailing code on its line into a member doc (/**< ... */);
  - @name references to parameters into <tt>name</tt>, since Doxygen would
    read them as (unknown) commands.
The header files themselves are never changed.
"""
import re
import sys

PARAM = re.compile(r'@([A-Za-z_][A-Za-z0-9_]*)')


def main(path):
    out = []
    first = True
    in_comment = False
    with open(path, encoding='utf-8') as f:
        for line in f:
            if in_comment or '/*' in line:
                line = PARAM.sub(r'<tt>\1</tt>', line)
            stripped = line.lstrip()
            if not in_comment and stripped.startswith('/*'):
                if first:
                    line = line.replace('/*', '/** @file\n *', 1)
                    first = False
                else:
                    line = line.replace('/*', '/**', 1)
                in_comment = '*/' not in line
            elif not in_comment and '/*' in line and not line.strip(
                    ).startswith('#'):
                line = line.replace('/*', '/**<', 1)
                in_comment = '*/' not in line
            elif in_comment and '*/' in line:
                in_comment = False
            out.append(line)
    sys.stdout.write(''.join(out))


if __name__ == '__main__':
    main(sys.argv[1])
