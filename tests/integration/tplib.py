"""tplib: the shared harness of tlsproxy's integration tests.

Each tests/integration/test_*.py is an automake test, run as `python3 FILE`
with TLSPROXY (the daemon), TOP_SRCDIR, OPENSSL and MOSQUITTO (a path or
"no") in the environment, and prints TAP for build-aux/tap-driver.sh:

    import tplib
    from tplib import case, check, check_eq

    @case("TLS 1.3 round trip")
    def _():
        ...

    tplib.main()

Cases run in order; an exception fails its case (traceback as "# " lines)
and the next case runs.  Everything a case starts (daemons, backends,
child processes) is stopped when the case ends; a daemon that does not stop
on SIGTERM within 15 s, exits non-zero, or logged a sanitizer report fails
the case.  Every wait is bounded.  Servers bind 127.0.0.1 only, on
ephemeral ports.

TPLIB_KEEP=1 keeps the temporary directory (configs, daemon logs);
TPLIB_ONLY=REGEX runs only the cases whose name matches (the rest SKIP).

The harness is split by concern, and this module gathers every public
name of the parts, so tests import from tplib alone:

    tp_core      TAP, cases and checks, temporary files and certificates,
                 sockets, child processes
    tp_backends  TCP backends (echo, half-close, reply after EOF, reset,
                 stream)
    tp_clients   TLS clients (Python's ssl over memory BIOs, openssl
                 s_client)
    tp_daemon    tlsproxy's config text, the daemon, mosquitto
    tp_proxy     the PROXY protocol a backend reads: a parser, a backend
                 that records the header, HAProxy's accept-proxy
    tp_ca        a CA made with openssl ca: issue, revoke, CRLs
    tp_ocsp      a CA with an OCSP responder on loopback (openssl ocsp)
"""

from tp_core import *  # noqa: F401,F403
from tp_backends import *  # noqa: F401,F403
from tp_clients import *  # noqa: F401,F403
from tp_daemon import *  # noqa: F401,F403
from tp_proxy import *  # noqa: F401,F403
from tp_ca import *  # noqa: F401,F403
from tp_ocsp import *  # noqa: F401,F403
