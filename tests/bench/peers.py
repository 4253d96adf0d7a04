#!/usr/bin/env python3
"""peers.py: what the benchmarks in tests/bench share.

Processes (started in their own process group, stopped at exit, CPU and
memory read from /proc), the TLS terminators tlsproxy, HAProxy, nginx
(stream), hitch and stunnel as classes that write their configuration and
run it, and the setup: installing missing peers with apt-get, test
certificates, the machine's description.  compare.py puts each proxy alone
in front of a backend; storm.py runs two of them as the nodes of a
cluster, sharing ticket keys the way each one's documentation says
(Proxy.cluster).
"""

import atexit
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
CLIENT_CIPHERS = ["--ciphersuites", "TLS_AES_128_GCM_SHA256",
                  "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"]
ALL_PROXIES = ["tlsproxy", "haproxy", "nginx", "hitch", "stunnel"]
APT_PACKAGES = {"haproxy": ["haproxy"], "nginx": ["nginx", "libnginx-mod-stream"],
                "hitch": ["hitch"], "stunnel": ["stunnel4"]}
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

_procs = []          # every Popen started, stopped at exit
_tmpdirs = []        # removed at exit unless kept
_log_prefix = "bench"


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_float(name, default):
    v = os.environ.get(name, "")
    return float(v) if v.strip() else default


def log(msg):
    sys.stderr.write("%s: %s\n" % (_log_prefix, msg))
    sys.stderr.flush()


def setup_exit(prefix):
    """Log as ${prefix}; stop every process started and remove the
    temporary directories at exit, on SIGTERM and SIGINT too."""
    global _log_prefix
    _log_prefix = prefix
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def make_tmpdir(prefix, keep=False):
    """A new temporary directory, removed at exit unless ${keep}."""
    d = tempfile.mkdtemp(prefix=prefix)
    if not keep:
        _tmpdirs.append(d)
    return d


# ---------------------------------------------------------------- processes

def stop_proc(p, grace=10):
    """SIGTERM p's process group (it has its own), then SIGKILL after grace."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=5)


def cleanup():
    for p in reversed(_procs):
        try:
            stop_proc(p, grace=5)
        except Exception:   # noqa: BLE001 - best effort at exit
            pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def on_signal(sig, frame):
    sys.exit(128 + sig)


def spawn(argv, cpu=None, cgroup=None, **kw):
    """Start argv in a process group of its own, pinned to ${cpu} and
    inside the cgroup directory ${cgroup} when given."""
    if cgroup is not None:
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] + argv
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu)] + argv
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _procs.append(p)
    return p


def forget(p):
    """p has been waited for: no need to stop it at exit."""
    if p in _procs:
        _procs.remove(p)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def descendants(root):
    """root and every process below it, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids):
    """(utime, stime) of the processes in seconds, all threads included.

    A process's /proc/PID/stat counts all its threads, the exited ones
    too; summing /proc/PID/task/*/stat instead would miss exited threads
    (stunnel's, one per connection)."""
    user = system = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def threads_of(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/task" % pid))
        except OSError:
            pass
    return n


def wait_tls(port, timeout=15):
    """Wait until a TLS handshake on port succeeds; True if it did."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                with ctx.wrap_socket(s, server_hostname="localhost"):
                    return True
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    return False


def run_cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(%s)" % e


# ---------------------------------------------------------------- proxies

class Proxy:
    """One TLS terminator: its config, its process tree, its figures.

    As a node of a cluster (${cluster}: a directory shared by the nodes),
    it shares ticket keys with the other nodes the way its documentation
    says, from files that make_cluster_keys() writes there once."""

    name = "?"
    binary = "?"
    nofile = 20000      # the descriptor limit it runs under
    idle_timeout = 60   # s: a quiet connection's life, where the proxy sets one
    session_timeout = 300   # s: the life of a session, where the proxy sets one
    cluster_note = "shares nothing"

    def __init__(self, tmp, certs, backend_port, cpu, instance=None, cluster=None):
        self.tmp = os.path.join(tmp, instance or self.name)
        os.makedirs(self.tmp, exist_ok=True)
        self.certs = certs
        self.backend_port = backend_port
        self.cpu = cpu
        self.port = free_port()
        self.proc = None
        self.notes = []
        self.cgroup = None          # a cgroup directory to run in
        self.extra_global = ""      # lines for the global section of the configuration
        self.cluster = cluster
        if cluster is not None:
            os.makedirs(cluster, exist_ok=True)
            self.make_cluster_keys(cluster)

    def make_cluster_keys(self, d):
        """Write the cluster's shared key files into ${d}, if not there yet."""

    @staticmethod
    def secret_file(path, data):
        """Write ${data} to ${path}, mode 600, unless the file exists."""
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return path

    def available(self):
        return shutil.which(self.binary) is not None

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.write_config()
        logf = open(os.path.join(self.tmp, "stderr.log"), "ab")
        self.proc = spawn(self.argv(), cpu=self.cpu, cgroup=self.cgroup, stdout=logf,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        if not wait_tls(self.port):
            self.stop()
            raise RuntimeError("%s did not come up; see %s" % (self.name, self.tmp))
        time.sleep(0.3)   # workers forked after the listener may still start

    def stop(self):
        if self.proc is not None:
            stop_proc(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        self.port = free_port()
        self.start()

    def kill(self):
        """SIGKILL the whole process group at once, as a crash would."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self.proc = None

    def pids(self):
        return descendants(self.proc.pid) if self.proc else []

    def version(self):
        return "?"

    def write_config(self):
        raise NotImplementedError


class TlsProxy(Proxy):
    name = "tlsproxy"

    cluster_note = "one tickets.seed_file on every node"

    def __init__(self, *a, path, workers=1, label="tlsproxy", tls13_tickets=1, tls13_renew=None,
                 **kw):
        self.path = path
        self.workers = workers
        self.binary = path
        self.name = label
        self.tls13_tickets = tls13_tickets
        self.tls13_renew = tls13_renew      # None: the default
        self.extra_listener = ""    # more settings for the listener
        super().__init__(*a, **kw)
        self.notes.append("workers = %d; tickets stateless with a seed, tls13_tickets %d; "
                          "session_cache 20480; log_level warning" % (workers, tls13_tickets))

    def make_cluster_keys(self, d):
        import base64
        self.secret_file(os.path.join(d, "tlsproxy.seed"), base64.b64encode(os.urandom(32)))

    def available(self):
        return os.access(self.path, os.X_OK)

    def write_config(self):
        self.conf = os.path.join(self.tmp, "tlsproxy.conf")
        with open(self.conf, "w") as f:
            f.write("""workers = %d;
log_level = "warning";
session_cache = { size = 20480; timeout = %d; };
tickets = { mode = "stateless"; %s;
	tls13_tickets = %d;%s };
%s
listeners = ( {
	name = "bench";
	listen = "127.0.0.1:%d";
	backend = "127.0.0.1:%d";
	cert = "%s";
	key = "%s";
	max_connections = 100000;
%s
} );
""" % (self.workers, self.session_timeout,
                'seed_file = "%s/tlsproxy.seed"' % self.cluster if self.cluster else
                'seed = "tlsproxy-benchmark-seed-0123456789"',
                self.tls13_tickets,
                ' tls13_renew = "%s";' % self.tls13_renew if self.tls13_renew else "",
                self.extra_global, self.port, self.backend_port,
                self.certs["cert"], self.certs["key"], self.extra_listener))

    def argv(self):
        return [self.path, "-r", "-c", self.conf]

    def version(self):
        return run_cmd([self.path, "-V"]).splitlines()[0]


class HAProxy(Proxy):
    name = "haproxy"
    binary = "haproxy"

    cluster_note = "one tls-ticket-keys file on every node"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("nbthread 1; tune.ssl.cachesize 20000; tickets on (default); no log")

    def make_cluster_keys(self, d):
        import base64
        # Three AES-256 keys, one per line: the middle one encrypts.
        self.secret_file(os.path.join(d, "haproxy.keys"), b"".join(
            base64.b64encode(os.urandom(80)) + b"\n" for _ in range(3)))

    def write_config(self):
        self.conf = os.path.join(self.tmp, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write("""global
    nbthread 1
    maxconn %d
    tune.ssl.cachesize 20000
    tune.ssl.lifetime %d
%s
defaults
    mode tcp
    timeout connect 5s
    timeout client %ds
    timeout server %ds
frontend tls
    bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.2%s
    default_backend plain
backend plain
    server b1 127.0.0.1:%d
""" % (min(30000, (self.nofile - 100) // 2), self.session_timeout, self.extra_global,
                self.idle_timeout, self.idle_timeout, self.port, self.certs["combined"],
                " tls-ticket-keys %s/haproxy.keys" % self.cluster if self.cluster else "",
                self.backend_port))

    def argv(self):
        return ["haproxy", "-db", "-f", self.conf]

    def version(self):
        return run_cmd(["haproxy", "-v"]).splitlines()[0]


class Nginx(Proxy):
    name = "nginx"
    binary = "nginx"

    cluster_note = "one ssl_session_ticket_key file on every node"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("worker_processes 1; stream module; ssl_session_cache shared:SSL:10m;"
                          " ssl_session_tickets on; no access log")

    def make_cluster_keys(self, d):
        self.secret_file(os.path.join(d, "nginx.key"), os.urandom(80))

    def available(self):
        return shutil.which("nginx") is not None and os.path.exists(NGINX_STREAM_MODULE)

    def write_config(self):
        self.conf = os.path.join(self.tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("""load_module %s;
worker_processes 1;
daemon off;
master_process on;
pid %s/nginx.pid;
error_log %s/error.log warn;
worker_rlimit_nofile %d;
events { worker_connections %d; }
stream {
    upstream plain { server 127.0.0.1:%d; }
    server {
        listen 127.0.0.1:%d ssl;
        proxy_pass plain;
        proxy_connect_timeout 5s;
        proxy_timeout %ds;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout %ds;
        ssl_session_tickets on;%s
    }
}
""" % (NGINX_STREAM_MODULE, self.tmp, self.tmp, self.nofile, self.nofile - 100,
                self.backend_port, self.port, self.idle_timeout,
                self.certs["cert"], self.certs["key"], self.session_timeout,
                "\n        ssl_session_ticket_key %s/nginx.key;" % self.cluster
                if self.cluster else ""))

    def argv(self):
        return ["nginx", "-p", self.tmp, "-e", os.path.join(self.tmp, "error.log"),
                "-c", self.conf]

    def version(self):
        return run_cmd(["nginx", "-v"]).splitlines()[0]


class Hitch(Proxy):
    name = "hitch"
    binary = "hitch"

    cluster_note = "cannot share ticket keys: each node has its own"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("workers 1; Debian's build has no session-cache (needs "
                          "--enable-sessioncache): OpenSSL's per-process cache, default tickets")

    def write_config(self):
        self.conf = os.path.join(self.tmp, "hitch.conf")
        os.makedirs(os.path.join(self.tmp, "ocsp"), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("""frontend = "[127.0.0.1]:%d"
backend = "[127.0.0.1]:%d"
pem-file = "%s"
workers = 1
backlog = 1024
daemon = off
tls-protos = TLSv1.2 TLSv1.3
log-level = 1
ocsp-dir = "%s/ocsp"
user = "%s"
""" % (self.port, self.backend_port, self.certs["combined"], self.tmp, self.user()))

    @staticmethod
    def user():
        """hitch refuses to run its workers as root."""
        import pwd
        for name in ("_hitch", "hitch", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        return "nobody"

    def argv(self):
        return ["hitch", "--config=" + self.conf]

    def version(self):
        return run_cmd(["hitch", "--version"]).splitlines()[0]


class Stunnel(Proxy):
    name = "stunnel"
    binary = "stunnel4"

    cluster_note = "one ticketKeySecret and ticketMacSecret on every node"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.notes.append("a thread per connection (no worker setting); sessionCacheSize "
                          "20000; debug = 3; TCP_NODELAY both sides")

    def make_cluster_keys(self, d):
        self.secret_file(os.path.join(d, "stunnel.keys"),
                         (os.urandom(32).hex() + "\n" + os.urandom(32).hex() + "\n").encode())

    def cluster_lines(self):
        if not self.cluster:
            return ""
        with open(os.path.join(self.cluster, "stunnel.keys")) as f:
            enc, mac = f.read().split()
        return "ticketKeySecret = %s\nticketMacSecret = %s\n" % (enc, mac)

    def available(self):
        return shutil.which("stunnel4") is not None or shutil.which("stunnel") is not None

    def write_config(self):
        self.conf = os.path.join(self.tmp, "stunnel.conf")
        with open(self.conf, "w") as f:
            f.write("""foreground = yes
pid =
debug = 3
output = %s/stunnel.log
syslog = no
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[tls]
accept = 127.0.0.1:%d
connect = 127.0.0.1:%d
cert = %s
key = %s
sslVersionMin = TLSv1.2
sessionCacheSize = 20000
sessionCacheTimeout = %d
TIMEOUTclose = 0
%s""" % (self.tmp, self.port, self.backend_port, self.certs["cert"], self.certs["key"],
                self.session_timeout,
                self.cluster_lines()))

    @staticmethod
    def program():
        return shutil.which("stunnel4") or "stunnel"

    def argv(self):
        return [self.program(), self.conf]

    def version(self):
        out = run_cmd([self.program(), "-version"])
        m = re.search(r"^stunnel \S+", out, re.M)
        return m.group(0) if m else out.splitlines()[0]


PROXY_CLASSES = {"tlsproxy": TlsProxy, "haproxy": HAProxy, "nginx": Nginx, "hitch": Hitch,
                 "stunnel": Stunnel}


# ---------------------------------------------------------------- setup

def install_missing(wanted, enabled=True, extra=()):
    """apt-get install the peers in ${wanted} that are missing, and the
    packages ${extra} (names of Debian packages) that are not installed,
    when root and ${enabled}."""
    if os.geteuid() != 0 or not enabled:
        return
    need = []
    for name in wanted:
        if name == "tlsproxy":
            continue
        cls = PROXY_CLASSES[name]
        probe = cls.__new__(cls)
        if not cls.available(probe):
            need.extend(APT_PACKAGES[name])
    for pkg in extra:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                           text=True, timeout=20)
        if "ok installed" not in r.stdout:
            need.append(pkg)
    if not need:
        return
    log("installing " + " ".join(need))
    envv = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # policy-rc.d keeps the packages' services from starting on install.
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=envv, timeout=600,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq"] + need, env=envv, timeout=900,
                       stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            os.unlink(policy)


def make_certs(srcdir, tmp):
    d = os.path.join(tmp, "certs")
    subprocess.run(["sh", os.path.join(srcdir, "certs", "gen-certs.sh"), d], check=True,
                   timeout=120)
    combined = os.path.join(d, "server-combined.pem")
    with open(combined, "w") as out:
        for part in ("server.pem", "server.key"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    os.chmod(combined, 0o600)
    return {"cert": os.path.join(d, "server.pem"), "key": os.path.join(d, "server.key"),
            "combined": combined, "ca": os.path.join(d, "ca.pem")}


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "openssl": run_cmd(["openssl", "version"]),
            "libevent": run_cmd(["pkg-config", "--modversion", "libevent"])}


def git_describe(srcdir):
    """The source tree's commit, or what it is when it is not a checkout
    (a `git archive` export, say)."""
    try:
        r = subprocess.run(["git", "-C", srcdir, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "%s (git: %s)" % (srcdir, e)
    if r.returncode != 0:
        return "%s (not a git checkout)" % srcdir
    return r.stdout.strip()


def linked_libssl(binary):
    path = shutil.which(binary) or binary
    out = run_cmd(["ldd", path])
    m = re.search(r"libssl\.so\S*\s*=>\s*(\S+)", out)
    return m.group(1) if m else "?"


