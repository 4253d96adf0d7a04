"""storm_topology.py: the reconnect-storm benchmark's topology on loopback.

    stormgen devices (127.100.x.y, one source address each)
      -> HAProxy, mode tcp, balance roundrobin: the balancer, no TLS
        -> two (or more) proxy nodes: tlsproxy or a peer, terminating TLS
          -> mosquitto, the broker

A process holds at most RLIMIT_NOFILE descriptors (20,000 here, and it
cannot be raised), so past ~9,000 devices the balancer runs as several
HAProxy processes on one port (SO_REUSEPORT, HAProxy's default), there are
more nodes, and more brokers (node i connects to broker i mod B); the
devices are a Generator, a running stormgen, spread over processes too.

The balancer can reshuffle: it reads from its runtime API which node each
device (source address) is on, maps every address to the next node with
`add map`, and cuts every session; reconnects follow the map until it is
cleared.  Every process runs in its own process group and is stopped at
exit (peers.spawn).
"""

import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

from peers import (CLIENT_CIPHERS, cpu_seconds, descendants, forget, free_port, run_cmd,
                   spawn, stop_proc)


def wait_port(port, timeout=15):
    """Wait until 127.0.0.1:port accepts; True if it did."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class CpuMeter:
    """CPU seconds of a process tree that may be restarted: the seconds of
    the trees already gone are kept."""

    def __init__(self):
        self.gone = 0.0

    def before_stop(self, pids):
        u, s = cpu_seconds(pids)
        self.gone += u + s

    def total(self, pids):
        u, s = cpu_seconds(pids)
        return self.gone + u + s


class Broker:
    """mosquitto on its own port, with persistent sessions and a log of
    every new connection, timestamped in seconds."""

    def __init__(self, tmp, index, cpu):
        self.dir = os.path.join(tmp, "mosquitto%d" % index)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.pin = cpu
        self.proc = None
        self.meter = CpuMeter()
        self.log = os.path.join(self.dir, "mosquitto.log")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("""listener %d 127.0.0.1
allow_anonymous true
max_connections -1
set_tcp_nodelay true
persistence true
persistence_location %s/
log_dest file %s
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
user root
""" % (self.port, self.dir, self.log))

    def start(self):
        out = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = spawn(["mosquitto", "-c", self.conf], cpu=self.pin, stdout=out,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        if not wait_port(self.port):
            raise RuntimeError("mosquitto did not come up; see %s" % self.dir)

    def stop(self):
        if self.proc is not None:
            self.meter.before_stop(self.pids())
            stop_proc(self.proc, grace=20)   # it saves its sessions first
            self.proc = None

    def pids(self):
        return descendants(self.proc.pid) if self.proc else []

    def cpu_s(self):
        return self.meter.total(self.pids())

    def connects(self):
        """Second -> new connections the broker accepted in that second."""
        per = {}
        with open(self.log, errors="replace") as f:
            for line in f:
                if ": New connection from " in line:
                    t = int(line.split(":", 1)[0])
                    per[t] = per.get(t, 0) + 1
        return per

    @staticmethod
    def version():
        out = run_cmd(["mosquitto", "-h"])
        m = re.search(r"mosquitto version (\S+)", out)
        return m.group(1) if m else "?"


class Balancer:
    """HAProxy as the load balancer: mode tcp, balance roundrobin over the
    nodes, no TLS; ${procs} processes share the port."""

    def __init__(self, tmp, node_ports, procs, cpu, nofile, idle_timeout):
        self.dir = os.path.join(tmp, "balancer")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.pin = cpu
        self.procs = []
        self.nodes = len(node_ports)
        self.meter = CpuMeter()
        self.map = os.path.join(self.dir, "reshuffle.map")
        open(self.map, "w").close()
        self.socks = [os.path.join(self.dir, "lb%d.sock" % i) for i in range(procs)]
        check = "check inter 1s fall 1 rise 1"
        servers = "".join("    server n%d 127.0.0.1:%d %s\n" % (i + 1, p, check)
                          for i, p in enumerate(node_ports))
        pinned = "".join("backend to_n%d\n    server n%d 127.0.0.1:%d %s\n"
                         % (i + 1, i + 1, p, check) for i, p in enumerate(node_ports))
        self.confs = []
        for i, sock in enumerate(self.socks):
            conf = os.path.join(self.dir, "lb%d.cfg" % i)
            with open(conf, "w") as f:
                f.write("""global
    nbthread 1
    maxconn %d
    stats socket %s mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client %ds
    timeout server %ds
    retries 3
    option redispatch 1
frontend devices
    bind 127.0.0.1:%d backlog 4096
    use_backend %%[src,map_ip(%s)] if { src,map_ip(%s) -m found }
    default_backend nodes
backend nodes
    balance roundrobin
%s%s""" % ((nofile - 200) // 2, sock, idle_timeout, idle_timeout, self.port, self.map,
                        self.map, servers, pinned))
            self.confs.append(conf)

    def start(self):
        for i, conf in enumerate(self.confs):
            out = open(os.path.join(self.dir, "lb%d.log" % i), "ab")
            self.procs.append(spawn(["haproxy", "-db", "-f", conf], cpu=self.pin, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            out.close()
        if not wait_port(self.port):
            raise RuntimeError("the balancer did not come up; see %s" % self.dir)
        for sock in self.socks:
            end = time.time() + 10
            while not os.path.exists(sock) and time.time() < end:
                time.sleep(0.05)

    def stop(self):
        for p in self.procs:
            stop_proc(p)
        self.procs = []

    def pids(self):
        return [q for p in self.procs for q in descendants(p.pid)]

    def cpu_s(self):
        return self.meter.total(self.pids())

    @staticmethod
    def cli(sock, cmd, timeout=30):
        """One command on a runtime API socket; its answer."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        try:
            s.connect(sock)
            s.sendall(cmd.encode())
            out = []
            while True:
                d = s.recv(1 << 16)
                if not d:
                    break
                out.append(d)
        finally:
            s.close()
        return b"".join(out).decode(errors="replace")

    def server_states(self):
        """"nK STATUS CONNECTIONS" for every node, summed over the
        balancer processes (show stat): what a failed run looked like."""
        states = {}
        for sock in self.socks:
            for line in self.cli(sock, "show stat\n").splitlines():
                f = line.split(",")
                if len(f) > 17 and f[0] == "nodes" and f[1].startswith("n"):
                    st = states.setdefault(f[1], [set(), 0])
                    st[0].add(f[17])
                    st[1] += int(f[4] or 0)
        return ", ".join("%s %s %d" % (n, "/".join(sorted(st[0])), st[1])
                         for n, st in sorted(states.items()))

    def placement(self):
        """Source address -> node number (1-based) of every device session."""
        where = {}
        pat = re.compile(r"src=([0-9.]+):\d+ fe=devices be=\S+ srv=n(\d+)")
        for sock in self.socks:
            for m in pat.finditer(self.cli(sock, "show sess\n")):
                where[m.group(1)] = int(m.group(2))
        return where

    def reshuffle(self):
        """Send every device to the next node: map its address, cut every
        session.  Returns (placement before, seconds the preparation took,
        the moment the sessions were cut)."""
        t = time.time()
        where = self.placement()
        lines = ["%s to_n%d\n" % (ip, n % self.nodes + 1) for ip, n in where.items()]
        for sock in self.socks:
            # A payload must fit HAProxy's buffer (16 kB): 400 lines at a time.
            for k in range(0, len(lines), 400):
                self.cli(sock, "add map %s <<\n%s\n" % (self.map, "".join(lines[k:k + 400])))
        prep = time.time() - t
        t_cut = time.time()
        for sock in self.socks:
            cmds = []
            for n in range(1, self.nodes + 1):
                cmds += ["shutdown sessions server nodes/n%d" % n,
                         "shutdown sessions server to_n%d/n%d" % (n, n)]
            self.cli(sock, ";".join(cmds) + "\n")
        return where, prep, t_cut

    def clear_map(self):
        for sock in self.socks:
            self.cli(sock, "clear map %s\n" % self.map)


class Topology:
    """Brokers, nodes and the balancer of one run, and their CPU."""

    def __init__(self, tmp, make_node, nodes, brokers, lb_procs, cpu_nodes, cpu_rest, nofile,
                 idle_timeout):
        self.brokers = [Broker(tmp, i, cpu_rest) for i in range(brokers)]
        self.nodes = [make_node(i, self.brokers[i % brokers].port) for i in range(nodes)]
        for n in self.nodes:
            n.cpu = cpu_nodes
            n.meter = CpuMeter()
        self.balancer = Balancer(tmp, [n.port for n in self.nodes], lb_procs, cpu_rest, nofile,
                                 idle_timeout)

    def start(self):
        for b in self.brokers:
            b.start()
        for n in self.nodes:
            n.start()
        self.balancer.start()

    def stop(self):
        self.balancer.stop()
        for n in self.nodes:
            n.stop()
        for b in self.brokers:
            b.stop()

    def restart_brokers(self, down=0.0):
        """Stop every broker, keep them down ${down} s more, then start
        each again on its port; the moment they were all back."""
        for b in self.brokers:
            b.stop()
        time.sleep(down)
        for b in self.brokers:
            b.start()
        return time.time()

    def kill_node(self, i):
        n = self.nodes[i]
        n.meter.before_stop(n.pids())
        n.kill()

    def start_node(self, i):
        self.nodes[i].start()

    def node_cpu(self):
        return sum(n.meter.total(n.pids()) for n in self.nodes)

    def broker_cpu(self):
        return sum(b.cpu_s() for b in self.brokers)

    def broker_connects(self):
        per = {}
        for b in self.brokers:
            for t, c in b.connects().items():
                per[t] = per.get(t, 0) + c
        return per


# ---------------------------------------------------------------- devices

class Generator:
    """A running stormgen and its latest status line."""

    def __init__(self, args, cfg, port, argv, records, cpu, duration):
        self.status = {}
        self.records = records
        full = [args.stormgen, "--port", str(port), "--insecure", "--records", records,
                "--duration", "%.0f" % duration, "--seed", str(cfg["seed"])] + \
            CLIENT_CIPHERS + argv
        self.proc = spawn(full, cpu=cpu, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(("status ", "stormgen ")):
                self.status = {k: float(v) for k, v in
                               (kv.split("=", 1) for kv in line.split()[1:])}

    def get(self, key):
        return self.status.get(key, 0)

    def wait(self, pred, timeout, poll=0.1):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            if self.proc.poll() is not None:
                return pred()
            time.sleep(poll)
        return False

    def pids(self):
        return descendants(self.proc.pid) if self.proc.poll() is None else []

    def cpu(self):
        u, s = cpu_seconds(self.pids())
        return u + s

    def finish(self, timeout=None):
        """Stop it now (or wait ${timeout} s for it to end by itself)."""
        try:
            if timeout is not None:
                self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        stop_proc(self.proc, grace=15)
        self.reader.join(timeout=10)
        forget(self.proc)
        return "".join(self.lines[-3:])


def gen_argv(cfg, devices):
    return ["--devices", str(devices), "--tls12", str(cfg["tls12"]),
            "--ramp", str(cfg["ramp"]), "--backoff-base", str(cfg["backoff_base"]),
            "--backoff-cap", str(cfg["backoff_cap"]),
            "--attempt-timeout", str(cfg["attempt_timeout"]),
            "--keepalive", str(cfg["keepalive"]), "--procs", str(cfg["gen_procs"])]


def tlsproxy_accepts(node):
    """Does this tlsproxy accept the node's configuration?  (ok, message)"""
    node.write_config()
    r = subprocess.run([node.path, "-t", "-c", node.conf], capture_output=True, text=True,
                       timeout=30)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def tlsproxy_metrics(nodes, prefixes):
    """The counters of the tlsproxy ${nodes} that have a metrics_port,
    whose names start with one of ${prefixes}, summed over nodes and
    listeners: "name{other labels}" -> value."""
    out = {}
    for node in nodes:
        port = getattr(node, "metrics_port", None)
        if port is None or node.proc is None:
            continue
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                        timeout=5) as r:
                text = r.read().decode(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.startswith(prefixes):
                continue
            key, value = line.rsplit(None, 1)
            key = re.sub(r'listener="[^"]*",?', "", key).replace(",}", "}").replace("{}", "")
            out[key] = out.get(key, 0) + float(value)
    return out
