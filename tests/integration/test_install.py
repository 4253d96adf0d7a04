#!/usr/bin/env python3
"""make install into a DESTDIR: every file lands where configure and
tlsproxy(8) FILES say, carrying the configured paths; a second install keeps
an edited configuration; the installed configuration is valid but for the
certificate and seed files it names; make uninstall removes what install
put, except a configuration the operator changed.

Needs the environment Makefile.am's INSTALL_TESTS_ENVIRONMENT sets (make
check does)."""

import os
import re
import shlex
import shutil
import stat
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import case, check, check_eq, check_match, diag, run  # noqa: E402

ENV = ("TP_MAKE", "TP_BUILDDIR", "TP_SBINDIR", "TP_BINDIR", "TP_SYSCONFDIR", "TP_MANDIR",
       "TP_UNITDIR", "TP_SYSUSERSDIR")
if any(not os.environ.get(v) for v in ENV):
    tplib.skip_all("run by make check: needs %s" % " ".join(ENV))

DIRS = dict((v[3:].lower(), os.environ[v]) for v in ENV)
CONF = os.path.join(DIRS["sysconfdir"], "tlsproxy", "tlsproxy.conf")
UNIT = os.path.join(DIRS["unitdir"], "tlsproxy.service")
SYSUSERS = os.path.join(DIRS["sysusersdir"], "tlsproxy.conf")
# Everything make install puts in place, by its configured path.
INSTALLED = {
    os.path.join(DIRS["sbindir"], "tlsproxy"): 0o755,
    os.path.join(DIRS["bindir"], "tlsproxy-probe"): 0o755,
    CONF: 0o644,
    os.path.join(DIRS["mandir"], "man8", "tlsproxy.8"): 0o644,
    os.path.join(DIRS["mandir"], "man5", "tlsproxy.conf.5"): 0o644,
    os.path.join(DIRS["mandir"], "man1", "tlsproxy-probe.1"): 0o644,
    UNIT: 0o644,
    SYSUSERS: 0o644,
    os.path.join(DIRS["sbindir"], "tlsproxy-ocsp-refresh"): 0o755,
    os.path.join(DIRS["mandir"], "man8", "tlsproxy-ocsp-refresh.8"): 0o644,
    os.path.join(DIRS["unitdir"], "tlsproxy-ocsp-refresh.service"): 0o644,
    os.path.join(DIRS["unitdir"], "tlsproxy-ocsp-refresh.timer"): 0o644,
}
REFRESH = os.path.join(DIRS["sbindir"], "tlsproxy-ocsp-refresh")
REFRESH_UNIT = os.path.join(DIRS["unitdir"], "tlsproxy-ocsp-refresh.service")

DESTDIR = os.path.join(tplib.tmpdir(), "destdir")


def dest(path):
    """dest(path): ${path} under DESTDIR."""
    return DESTDIR + path


def make(*targets):
    """Run make in the build tree, as a fresh make (not a sub-make of the
    make running this test: no jobserver, no inherited flags)."""
    env = dict((k, v) for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR"))
    cmd = shlex.split(DIRS["make"]) + ["-C", DIRS["builddir"]] + list(targets) + \
        ["DESTDIR=" + DESTDIR]
    rc, out, err = run(cmd, env=env, timeout=600)
    if rc != 0:
        raise tplib.Failure("%s: exit %d\n%s\n%s" % (" ".join(cmd), rc, out[-3000:], err[-3000:]))
    return out + err


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def files_section(page):
    """The paths of the .It Pa lines in the FILES section of ${page}."""
    m = re.search(r"^\.Sh FILES\n(.*?)^\.Sh ", read(page), re.M | re.S)
    check(m is not None, "no FILES section in " + page)
    return re.findall(r"^\.It Pa (\S+)", m.group(1), re.M)


def installed_files():
    out = []
    for top, _dirs, files in os.walk(DESTDIR):
        out += [os.path.join(top, f)[len(DESTDIR):] for f in files]
    return sorted(out)


@case("make install DESTDIR=...: every file where configure says, with its mode")
def _():
    log = make("install")
    for path, mode in sorted(INSTALLED.items()):
        check(os.path.isfile(dest(path)), "not installed: %s\n%s" % (path, log[-2000:]))
        got = stat.S_IMODE(os.stat(dest(path)).st_mode)
        check_eq(oct(got), oct(mode), "mode of " + path)
    extra = [p for p in installed_files() if p not in INSTALLED]
    check(not extra, "installed but not expected: %s" % extra)
    rc, out, _err = run([dest(os.path.join(DIRS["sbindir"], "tlsproxy")), "-V"], check_rc=0)
    check_match(r"^tlsproxy ", out, "tlsproxy -V")


@case("tlsproxy(8) FILES names the installed configuration, unit and sysusers file")
def _():
    page = dest(os.path.join(DIRS["mandir"], "man8", "tlsproxy.8"))
    files = files_section(page)
    for path in (CONF, UNIT, SYSUSERS):
        check(path in files, "%s is not in FILES of tlsproxy(8): %s" % (path, files))
        check(os.path.isfile(dest(path)), "FILES says %s, but it is not installed" % path)
    for path in files:
        check(path.startswith(DIRS["sysconfdir"] + "/") or path in (UNIT, SYSUSERS),
              "FILES names %s, outside the configured directories" % path)
    conf5 = files_section(dest(os.path.join(DIRS["mandir"], "man5", "tlsproxy.conf.5")))
    check(CONF in conf5, "%s is not in FILES of tlsproxy.conf(5): %s" % (CONF, conf5))


@case("the installed unit, man pages and configuration carry the configured paths")
def _():
    for path in INSTALLED:
        if "/man" in path or path in (UNIT, CONF, REFRESH, REFRESH_UNIT):
            text = read(dest(path))
            left = sorted(set(re.findall(r"@[A-Za-z_]+@", text)))
            check(not left, "%s: not substituted: %s" % (path, left))
    unit = read(dest(UNIT))
    tlsproxy = os.path.join(DIRS["sbindir"], "tlsproxy")
    for line in ("ExecStartPre=%s -t -c %s" % (tlsproxy, CONF),
                 "ExecStart=%s -c %s" % (tlsproxy, CONF),
                 "ExecReload=%s -t -c %s" % (tlsproxy, CONF)):
        check(line in unit.splitlines(), "not in the unit: " + line)
    refresh_unit = read(dest(REFRESH_UNIT)).splitlines()
    for line in ("ExecStart=%s -c %s" % (REFRESH, CONF),
                 "ReadWritePaths=%s/tlsproxy" % DIRS["sysconfdir"]):
        check(line in refresh_unit, "not in the refresh unit: " + line)
    rc, out, _err = run(["sh", dest(REFRESH), "-h"], check_rc=0)
    check(CONF in out, "tlsproxy-ocsp-refresh -h does not name " + CONF)
    page = read(dest(os.path.join(DIRS["mandir"], "man8", "tlsproxy.8")))
    check(CONF in page, "tlsproxy(8) does not name " + CONF)
    conf = read(dest(CONF))
    seed = os.path.join(DIRS["sysconfdir"], "tlsproxy", "ticket.seed")
    check('seed_file = "%s";' % seed in conf, "the configuration does not name " + seed)
    if DIRS["sysconfdir"] != "/etc":
        check(not re.search(r'"/etc/tlsproxy/', conf), "the configuration names /etc/tlsproxy")
        check("/etc/tlsproxy" not in page.replace(DIRS["sysconfdir"] + "/tlsproxy", ""),
              "tlsproxy(8) names /etc/tlsproxy, not %s/tlsproxy" % DIRS["sysconfdir"])


@case("the installed configuration is valid but for the files it names")
def _():
    path = dest(CONF)
    rc, _out, err = run([dest(os.path.join(DIRS["sbindir"], "tlsproxy")), "-t", "-c", path])
    if rc == 0:
        return      # the certificate and seed exist on this machine
    check_eq(rc, 78, "tlsproxy -t exit status\n" + err)
    errors = [l for l in err.splitlines() if l.startswith(path + ":")]
    check(errors, "no FILE:LINE: errors:\n" + err)
    for line in errors:
        check_match(r"^\S+:\d+: \S+: cannot read %s/tlsproxy/\S+: No such file or directory"
                    % re.escape(DIRS["sysconfdir"]), line, "an error other than a missing file")
    diag("\n".join(errors))


@case("a second make install keeps an edited configuration, installs the rest again")
def _():
    path = dest(CONF)
    edited = read(path) + "\n# edited by the operator\n"
    with open(path, "w") as f:
        f.write(edited)
    unit = dest(UNIT)
    os.unlink(unit)
    log = make("install")
    check_eq(read(path), edited, "the configuration after a second install")
    check("keeping" in log, "install did not say it kept the configuration:\n" + log[-2000:])
    check(os.path.isfile(unit), "the unit was not installed again")


@case("make uninstall removes everything but an edited configuration")
def _():
    make("uninstall")
    left = installed_files()
    check_eq(left, [CONF], "files left after uninstall")
    # An unchanged configuration is removed with the rest.
    shutil.copyfile(os.path.join(DIRS["builddir"], "etc", "tlsproxy.conf.example"), dest(CONF))
    make("uninstall")
    check_eq(installed_files(), [], "files left after uninstall of an unchanged configuration")


tplib.main()
