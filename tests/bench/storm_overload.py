"""storm_overload.py: the overload part of the reconnect-storm benchmark.

One node, alone (no balancer), in front of its own mosquitto, on a core of
its own, must be offered several times the full handshakes it completes
by a generator on the other core.  With the P-256 key of the events a
device spends more CPU on a full handshake than the server does, so the
node gets an RSA key (STORM_OVERLOAD_KEY, rsa4096 by default): its
signature then costs many times the device's verification.  The older
way, a CPU quota for the node (STORM_OVERLOAD_CPU, a cgroup), also works,
but a quota stops the whole node for the rest of each period once it is
spent, so every latency under load is the quota's.

For each node: its capacity (64 devices doing full handshakes back to
back), then the resumption latency of a small population that keeps
leaving and resuming (unloaded), then the same population while one-shot
full handshakes arrive at STORM_OVERLOAD_FACTOR times the capacity
(loaded; the arrivals begin 1 s after the population, which holds its
sessions by then, and the window 3 s later).  Then the same node with its limit: tlsproxy with
full_handshake_rate, HAProxy with maxsslrate, both at
STORM_OVERLOAD_RATE_FRACTION of the capacity; and tlsproxy with
full_handshake_priority = "low", with and without the rate.
"""

import os
import resource
import subprocess
import time

from peers import PROXY_CLASSES, TlsProxy, cpu_seconds, free_port, log
from storm_figures import arrival_figures, population_figures, read_records
from storm_topology import Broker, Generator, tlsproxy_accepts, tlsproxy_metrics


def make_cgroup(cores, period_us=5000):
    """A cgroup that lets its processes use ${cores} CPUs; its path, or None."""
    base_v1 = "/sys/fs/cgroup/cpu"
    name = "tlsproxy-storm-%d" % os.getpid()
    quota = max(1000, int(cores * period_us))
    try:
        if os.path.exists(os.path.join(base_v1, "cgroup.procs")):
            d = os.path.join(base_v1, name)
            os.mkdir(d)
            with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                f.write(str(period_us))
            with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(quota))
            return d
        d = os.path.join("/sys/fs/cgroup", name)
        os.mkdir(d)
        with open(os.path.join(d, "cpu.max"), "w") as f:
            f.write("%d %d" % (quota, period_us))
        return d
    except OSError as e:
        log("no CPU quota for the overload run: %s" % e)
        return None


def node_certs(certs, key, tmp):
    """${certs} with the server's key and certificate replaced by a new
    ${key} ("rsaBITS"; "ec": as they are), signed by the same CA."""
    if key == "ec":
        return certs
    bits = int(key[3:]) if key.startswith("rsa") and key[3:].isdigit() else None
    if bits is None:
        raise SystemExit("storm: STORM_OVERLOAD_KEY must be ec or rsaBITS, not %r" % key)
    d = os.path.dirname(certs["cert"])
    out = {"ca": certs["ca"], "key": os.path.join(tmp, "overload.key"),
           "cert": os.path.join(tmp, "overload.pem"),
           "combined": os.path.join(tmp, "overload-combined.pem")}
    ext = os.path.join(tmp, "overload.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\nkeyUsage = critical, "
                "digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    csr = os.path.join(tmp, "overload.csr")
    for argv in (["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                  "rsa_keygen_bits:%d" % bits, "-out", out["key"]],
                 ["openssl", "req", "-new", "-key", out["key"], "-subj", "/CN=localhost",
                  "-out", csr],
                 ["openssl", "x509", "-req", "-in", csr, "-CA", certs["ca"], "-CAkey",
                  os.path.join(d, "ca.key"), "-set_serial", "7", "-days", "2",
                  "-extfile", ext, "-out", out["cert"]]):
        subprocess.run(argv, check=True, timeout=300, capture_output=True)
    with open(out["combined"], "w") as f:
        for part in (out["cert"], out["key"]):
            with open(part) as g:
                f.write(g.read())
    os.chmod(out["combined"], 0o600)
    return out


def population_run(args, cfg, port, tmp, tag, arrivals=0.0, fresh=False, devices=None):
    """stormgen against one node for warm-up + window seconds; the records
    and the window."""
    warm, window = 4.0, float(cfg["ov_seconds"])
    devices = devices if devices is not None else cfg["ov_resumers"]
    argv = ["--devices", str(devices), "--tls12", str(cfg["tls12"]), "--ramp", "1000",
            "--hold", "0.5" if not fresh else "0", "--gap", "0.5" if not fresh else "0",
            "--attempt-timeout", str(cfg["attempt_timeout"]), "--keepalive", "60",
            "--procs", "2" if arrivals else "1", "--clean", "--id-prefix", tag,
            "--src", "127.101.0.1", "--src-count", "1000"]
    if fresh:
        argv.append("--fresh")
    if arrivals:
        # The population holds its sessions before the flood begins (1 s in,
        # its first handshakes take a fraction of that), and the flood is in
        # its steady state by the window: what is measured is resumption
        # under load, not the population's first full handshake.
        argv += ["--arrivals", "%.1f" % arrivals, "--arrivals-after", "1"]
    records = os.path.join(tmp, "records-%s.txt" % tag)
    duration = warm + window + (cfg["attempt_timeout"] + 1 if arrivals else 0)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    gen = Generator(args, cfg, port, argv, records, cfg["rest_cpu"], duration)
    gen.finish(timeout=duration + 30)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen_share = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (time.time() - t0)
    return read_records(records), t0 + warm, t0 + warm + window, gen_share


def overload_row(label, node, args, cfg, tmp, capacity=None):
    if isinstance(node, TlsProxy):
        node.metrics_port = free_port()
        node.extra_global += '\nmetrics = "127.0.0.1:%d";' % node.metrics_port
    node.start()
    try:
        tag = label.split()[0][:2] + str(int(time.time() * 10) % 100000)
        if capacity is None:
            recs, w0, w1, _ = population_run(args, cfg, node.port, tmp, tag + "c",
                                             fresh=True, devices=64)
            capacity = population_figures(recs, w0, w1)["rate"]
            log("overload: %s completes %.0f full handshakes/s" % (label, capacity))
        recs, w0, w1, _ = population_run(args, cfg, node.port, tmp, tag + "u")
        unloaded = population_figures(recs, w0, w1)
        offered = cfg["ov_factor"] * capacity
        c0 = sum(cpu_seconds(node.pids()))
        t0 = time.time()
        recs, w0, w1, gen_share = population_run(args, cfg, node.port, tmp, tag + "l",
                                                 arrivals=offered)
        cpu_share = (sum(cpu_seconds(node.pids())) - c0) / (time.time() - t0)
        counters = tlsproxy_metrics([node], ("tlsproxy_full_handshakes_",))
    finally:
        node.stop()
    row = {"label": label, "capacity": capacity, "offered": offered, "unloaded": unloaded,
           "loaded": population_figures(recs, w0, w1),
           "arrivals": arrival_figures(recs, w0, w1), "node_cpu_share": cpu_share,
           "generator_cpu_share": gen_share, "admission": counters}
    log("overload: %s: goodput %.0f/s, resumed p99 %s ms" % (
        label, row["arrivals"]["goodput"], row["loaded"]["resume_p99_ms"]))
    return row


def overload(args, cfg, certs, tmp):
    cgroup = None
    if cfg["ov_cpu"]:
        cgroup = make_cgroup(cfg["ov_cpu"])
        if cgroup is None:
            return [{"label": "all", "pending": "no CPU quota: the generator cannot offer 3x"}]
    certs = node_certs(certs, cfg["ov_key"], tmp)
    broker = Broker(tmp, 99, cfg["rest_cpu"])
    rows = []
    try:
        broker.start()
        for name in cfg["ov_proxies"]:
            cls = PROXY_CLASSES[name]
            kw = {"path": args.tlsproxy} if name == "tlsproxy" else {}

            def node(variant):
                n = cls(tmp, certs, broker.port, cfg["node_cpu"],
                        instance="%s-overload-%s" % (name, variant), **kw)
                n.cgroup = cgroup
                n.session_timeout = 3600
                return n
            if not node("probe").available():
                continue
            base = overload_row("%s, no limit" % name, node("nolimit"), args, cfg, tmp)
            rows.append(base)
            rate = int(cfg["ov_fraction"] * base["capacity"])
            low_rate = int(cfg["ov_low_fraction"] * base["capacity"])
            for label, variant, extra_listener, extra_global in limits(name, rate, low_rate):
                limited = node(variant)
                limited.extra_listener = extra_listener
                limited.extra_global = extra_global
                if name == "tlsproxy":
                    ok, msg = tlsproxy_accepts(limited)
                    if not ok:
                        rows.append({"label": label, "pending": "pending: this tlsproxy "
                                     "refuses it: " + msg.splitlines()[0]})
                        continue
                rows.append(overload_row(label, limited, args, cfg, tmp, base["capacity"]))
    finally:
        broker.stop()
        if cgroup is not None:
            try:
                os.rmdir(cgroup)
            except OSError:
                pass
    return rows


def limits(name, rate, low_rate):
    """The limited variants of node ${name}: (label, instance, listener
    settings, global settings), with the limit at ${rate} full handshakes
    a second, and at ${low_rate} where full_handshake_priority = "low" keeps
    the resumptions' CPU for them (the rate need not leave room)."""
    if name == "haproxy":
        return [("haproxy, maxsslrate %d" % rate, "limit", "", "    maxsslrate %d" % rate)]
    if name != "tlsproxy":
        return []
    low = 'full_handshake_priority = "low";'
    return [("tlsproxy, full_handshake_rate = %d" % rate, "limit",
             "full_handshake_rate = %d;" % rate, ""),
            ("tlsproxy, full_handshake_priority = low", "low", "", low),
            ("tlsproxy, full_handshake_priority = low, full_handshake_rate = %d" % low_rate,
             "both", "full_handshake_rate = %d;" % low_rate, low)]
