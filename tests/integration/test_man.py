#!/usr/bin/env python3
"""Man pages: every page make generates from man/*.in is clean under
`mandoc -Tlint -Wwarning` (skipped where mandoc is absent), has no @name@
left from its template, and has the sections the project promises."""

import os
import re
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import case, check, run  # noqa: E402

BUILDDIR = os.environ.get("TP_BUILDDIR") or os.path.dirname(tplib.TLSPROXY)
PAGES = ("tlsproxy.8", "tlsproxy.conf.5", "tlsproxy-probe.1", "tlsproxy-ocsp-refresh.8")
MANDOC = shutil.which("mandoc")

# Sections each page must have, in this order.
SECTIONS = {
    "tlsproxy.8": ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS",
                   "PRIVILEGES", "SYSTEMD", "ENVIRONMENT", "FILES", "EXIT STATUS",
                   "EXAMPLES", "SEE ALSO"],
    "tlsproxy.conf.5": ["NAME", "DESCRIPTION", "GLOBAL SETTINGS", "RELOAD", "FILES",
                        "EXAMPLES", "SEE ALSO"],
    "tlsproxy-probe.1": ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "EXAMPLES",
                         "SEE ALSO"],
    "tlsproxy-ocsp-refresh.8": ["NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES",
                                "EXIT STATUS", "EXAMPLES", "SEE ALSO"],
}


def page(name):
    path = os.path.join(BUILDDIR, "man", name)
    check(os.path.exists(path), "%s was not generated (run make)" % path)
    with open(path) as f:
        return path, f.read()


for name in PAGES:
    @case("%s: mandoc -Tlint -Wwarning is clean" % name)
    def _(name=name):
        if not MANDOC:
            raise tplib.Skip("mandoc is not installed (apt-get install mandoc)")
        path, _text = page(name)
        rc, out, err = run([MANDOC, "-Tlint", "-Wwarning", path])
        check(rc == 0 and not (out + err).strip(),
              "mandoc -Tlint -Wwarning %s: exit %d\n%s%s" % (path, rc, out, err))

    @case("%s: no @name@ left, the promised sections are there" % name)
    def _(name=name):
        path, text = page(name)
        left = re.findall(r"@[A-Za-z_]+@", text)
        check(not left, "%s: not substituted: %s" % (path, " ".join(sorted(set(left)))))
        have = re.findall(r"^\.Sh (.*)$", text, re.M)
        want = SECTIONS[name]
        missing = [s for s in want if s not in have]
        check(not missing, "%s: missing sections %s (has %s)" % (path, missing, have))
        order = [s for s in have if s in want]
        check(order == want, "%s: sections out of order: %s" % (path, order))


@case("tlsproxy.8 documents every option of the usage message")
def _():
    _path, text = page("tlsproxy.8")
    rc, out, _err = run([tplib.TLSPROXY, "-h"], check_rc=0)
    opts = re.findall(r"^\s+-([A-Za-z])\b", out, re.M)
    check(opts, "no options in tlsproxy -h:\n" + out)
    documented = set(re.findall(r"^\.It Fl ([A-Za-z])\b", text, re.M))
    missing = [o for o in opts if o not in documented]
    check(not missing, "options not in OPTIONS: %s" % missing)


@case("tlsproxy-probe.1 documents every option of the probe's usage line")
def _():
    _path, text = page("tlsproxy-probe.1")
    probe = os.environ.get("TLSPROXY_PROBE") or os.path.join(BUILDDIR, "tlsproxy-probe")
    rc, out, _err = run([probe, "-h"], check_rc=0)
    opts = re.findall(r"\[--([a-z]+)", out)
    check(opts, "no options in tlsproxy-probe -h:\n" + out)
    documented = set(re.findall(r"^\.It Fl \\-([a-z]+)\b", text, re.M))
    synopsis = set(re.findall(r"^\.Op Fl \\-([a-z]+)\b", text, re.M))
    for where, have in (("options", documented), ("SYNOPSIS", synopsis)):
        missing = [o for o in opts if o not in have]
        check(not missing, "options not in the %s of tlsproxy-probe.1: %s" % (where, missing))


@case("tlsproxy-ocsp-refresh.8 documents every option and variable of the script")
def _():
    _path, text = page("tlsproxy-ocsp-refresh.8")
    script = os.environ.get("TLSPROXY_OCSP_REFRESH") or \
        os.path.join(BUILDDIR, "scripts", "tlsproxy-ocsp-refresh")
    rc, out, _err = run(["sh", script, "-h"], check_rc=0)
    opts = re.findall(r"^\s+-([A-Za-z])\b", out, re.M) + ["h"]
    check(len(opts) > 1, "no options in tlsproxy-ocsp-refresh -h:\n" + out)
    documented = set(re.findall(r"^\.It Fl ([A-Za-z])\b", text, re.M))
    synopsis = set(re.findall(r"^\.Op Fl ([A-Za-z])\b", text, re.M))
    check(not [o for o in opts if o not in documented],
          "options not described: %s" % [o for o in opts if o not in documented])
    check(not [o for o in opts if o not in synopsis | {"h"}],
          "options not in the SYNOPSIS: %s" % [o for o in opts if o not in synopsis])
    with open(script) as f:
        env = set(re.findall(r"\$\{([A-Z_]+):-", f.read()))
    check(env, "no environment variables found in " + script)
    described = set(re.findall(r"^\.It Ev ([A-Z_]+)", text, re.M))
    check(env <= described, "variables not in ENVIRONMENT: %s" % sorted(env - described))


tplib.main()
