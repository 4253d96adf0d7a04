#!/usr/bin/env python3
"""cgsummary.py DUMP HANDSHAKES: where a callgrind dump's instructions go,
per handshake: self cost by object (tlsproxy, libssl, libcrypto, libc,
libevent), the top self functions of tlsproxy's own code and of libc, and
the top named functions by inclusive cost.

Self cost is each cost line's count; the line after "calls=" is the
inclusive cost of a call and counts for the callee, not the caller.
Debian's libssl and libcrypto are stripped of their static functions, so
only exported names appear; the rest are addresses.
"""

import collections
import re
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: cgsummary.py DUMP HANDSHAKES")
    n = max(int(sys.argv[2]), 1)
    names = {"ob": {}, "fn": {}}

    def name(kind, text):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", text)
        if not m:
            return text
        if m.group(2):
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), text)

    by_ob, by_fn = collections.Counter(), collections.Counter()
    incl = collections.Counter()
    ob = fn = cfn = None
    skip = False
    with open(sys.argv[1]) as f:
        for line in f:
            if line.startswith("ob="):
                ob = name("ob", line[3:].strip())
            elif line.startswith("fn="):
                fn = name("fn", line[3:].strip())
            elif line.startswith("cob="):
                name("ob", line[4:].strip())
            elif line.startswith("cfn="):
                cfn = name("fn", line[4:].strip())
            elif line.startswith("calls="):
                skip = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                cost = int(line.split()[-1])
                if skip:
                    skip = False
                    if cfn != fn:       # recursion would count twice
                        incl[fn] += cost
                    continue
                by_ob[ob] += cost
                by_fn[(ob, fn)] += cost
    for (o, f), c in by_fn.items():
        incl[f] += c
    total = sum(by_ob.values())

    def short(o):
        return (o or "?").split("/")[-1]

    print("instructions per handshake: %.2f M; self cost by object:" % (total / n / 1e6))
    for o, c in by_ob.most_common(6):
        print("  %-28s %8.0f k  %5.1f%%" % (short(o), c / n / 1e3, 100.0 * c / total))
    for label, test in (("tlsproxy's own code", lambda o: short(o) == "tlsproxy"),
                        ("libc (mostly called by OpenSSL)",
                         lambda o: short(o).startswith("libc.so"))):
        print("%s, top functions (self), k per handshake:" % label)
        items = sorted(((f, c) for (o, f), c in by_fn.items() if test(o)),
                       key=lambda x: -x[1])
        for f, c in items[:8]:
            print("  %-40s %8.1f" % (f or "?", c / n / 1e3))
    print("top named functions (inclusive), k per handshake:")
    k = 0
    for f, c in incl.most_common():
        if not f or f.startswith("0x") or "0x" in f:
            continue
        print("  %-40s %8.1f" % (f, c / n / 1e3))
        k += 1
        if k == 45:
            break


if __name__ == "__main__":
    main()
