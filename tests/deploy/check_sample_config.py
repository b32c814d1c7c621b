#!/usr/bin/env python3
"""deploy/streamhub.conf must be `streamhubd --help-config` with some keys
set, and streamhubd's own loader must accept it, so that the sample
config cannot drift from the key table (libstreamhub/core/config_table.c).

The file is the generated text, in which a deployment may:
  - set a key: its line `#key = default` becomes `key = value`;
  - add notes: lines starting with `##`, kept just above a key's line.
Undo both and what is left must equal the generated text exactly.

usage: check_sample_config.py STREAMHUBD FILE           check
       check_sample_config.py STREAMHUBD FILE --write   regenerate FILE
                                                        (keeps set keys
                                                        and notes)
"""
import os
import re
import subprocess
import sys

KEY_LINE = re.compile(r'^#?([a-z][a-z0-9.-]*) =( .*)?$')


def generated(streamhubd):
    return subprocess.run([streamhubd, '--help-config'], check=True,
                          capture_output=True, text=True).stdout


def key_lines(text):
    """{key: index of its line} of the generated @text."""
    out = {}
    for i, line in enumerate(text.split('\n')):
        m = KEY_LINE.match(line)
        if m and line.startswith('#'):
            out[m.group(1)] = i
    return out


def parse(text, keys):
    """The settings and notes of a sample: ({key: line}, {key: [notes]})."""
    settings, notes, pending = {}, {}, []
    for n, line in enumerate(text.split('\n'), 1):
        if line.startswith('##'):
            pending.append(line)
            continue
        m = KEY_LINE.match(line)
        if m and m.group(1) in keys:
            if pending:
                notes[m.group(1)] = pending
                pending = []
            if not line.startswith('#'):
                if m.group(1) in settings:
                    sys.exit(f'line {n}: {m.group(1)} is set twice')
                settings[m.group(1)] = line
        elif pending and not line.startswith('#'):
            sys.exit(f'line {n}: a ## note must be followed by a key line')
    return settings, notes


def render(gen, settings, notes):
    lines = gen.split('\n')
    idx = key_lines(gen)
    for key, i in sorted(idx.items(), key=lambda kv: -kv[1]):
        if key in settings:
            lines[i] = settings[key]
        lines[i:i] = notes.get(key, [])
    return '\n'.join(lines)


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[3:] not in ([], ['--write']):
        sys.exit(__doc__)
    streamhubd, path = sys.argv[1], sys.argv[2]
    gen = generated(streamhubd)
    keys = key_lines(gen)
    text = open(path, encoding='utf-8').read()
    settings, notes = parse(text, keys)
    want = render(gen, settings, notes)
    if sys.argv[3:] == ['--write']:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(want)
        print(f'{path}: {len(keys)} keys, {len(settings)} set')
        return
    if text != want:
        import difflib
        sys.stdout.writelines(difflib.unified_diff(
            text.splitlines(True), want.splitlines(True), path,
            'streamhubd --help-config + its settings'))
        sys.exit(f'{path} is stale (diff above); run '
                 'scripts/update-config-doc.sh')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('STREAMHUB_')}
    r = subprocess.run([streamhubd, '--config', path, '--check'], env=env,
                       capture_output=True, text=True)
    sys.stdout.write(r.stdout + r.stderr)
    if r.returncode != 0:
        sys.exit(f'streamhubd refuses {path}')
    print(f'{path}: {len(keys)} keys, {len(settings)} set, accepted')


if __name__ == '__main__':
    main()
