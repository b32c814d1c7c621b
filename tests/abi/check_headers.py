#!/usr/bin/env python3
"""Compile every public header alone, in C11 and in C++11, warnings as errors.

A public header must stand on its own (include what it uses, nothing more
than standard headers) and must be usable from C++ (extern "C", no C-only
syntax).  The headers are found by glob at run time, so a new header is
checked without touching this test.

usage: check_headers.py --cc CC... --cxx CXX... --include DIR...
       [--sizes]   also assert the frozen structs' sizes in C and C++
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

FLAGS = ['-Wall', '-Wextra', '-Wpedantic', '-Werror', '-fsyntax-only']

# The frozen public value types (types.h: "size-asserted").  A change here
# is an ABI break and needs a major version.
FROZEN = {
    'streamhub/bus.h': [('sh_position_t', 48), ('sh_subscribe_result_t', 56)],
}


def compile_tu(cmd, lang_flags, source, suffix, incs):
    with tempfile.NamedTemporaryFile('w', suffix=suffix, delete=False) as f:
        f.write(source)
        path = f.name
    try:
        args = cmd + lang_flags + FLAGS + ['-I' + d for d in incs] + [path]
        p = subprocess.run(args, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--cc', nargs='+', required=True)
    ap.add_argument('--cxx', nargs='+', required=True)
    ap.add_argument('--include', nargs='+', required=True)
    ap.add_argument('--sizes', action='store_true')
    a = ap.parse_args()

    headers = []
    for d in a.include:
        headers += glob.glob(os.path.join(d, 'streamhub', '*.h'))
    names = sorted({os.path.relpath(h, os.path.dirname(os.path.dirname(h)))
                    for h in headers})
    if 'streamhub/streamhub.h' not in names:
        print('no public headers found under', a.include)
        return 1

    langs = [('C11', a.cc, ['-std=c11', '-x', 'c'], '.c'),
             ('C++11', a.cxx, ['-std=c++11', '-x', 'c++'], '.cpp')]
    failed = 0
    checked = 0
    if a.sizes:
        for lang, cmd, lflags, suffix in langs:
            for hdr, structs in FROZEN.items():
                if hdr not in names:
                    print('FAIL %s: %s is missing' % (lang, hdr))
                    failed += 1
                    continue
                src = '#include "%s"\n' % hdr
                for typ, size in structs:
                    assert_kw = ('static_assert' if suffix == '.cpp'
                                 else '_Static_assert')
                    src += ('%s(sizeof(%s) == %d, "%s is frozen at %d '
                            'bytes");\n' % (assert_kw, typ, size, typ, size))
                src += 'int sh_abi_probe(void);\n'
                rc, out = compile_tu(cmd, lflags, src, suffix, a.include)
                checked += 1
                if rc != 0:
                    failed += 1
                    print('FAIL %s sizes of %s:\n%s' % (lang, hdr, out))
                else:
                    print('ok   %s sizes of %s' % (lang, hdr))
    else:
        for name in names:
            for lang, cmd, lflags, suffix in langs:
                # Twice: the include guard must hold too.
                src = ('#include "%s"\n#include "%s"\n'
                       'int sh_abi_probe(void);\n' % (name, name))
                rc, out = compile_tu(cmd, lflags, src, suffix, a.include)
                checked += 1
                if rc != 0:
                    failed += 1
                    print('FAIL %s %s:\n%s' % (lang, name, out))
                else:
                    print('ok   %s %s' % (lang, name))
    print('%d checked, %d failed' % (checked, failed))
    return 1 if failed or not checked else 0


if __name__ == '__main__':
    sys.exit(main())
