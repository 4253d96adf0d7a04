#!/usr/bin/env python3
"""storm.py: the reconnect-storm benchmark (make storm).

STORM_DEVICES devices (stormgen) connect through HAProxy (mode tcp,
balance roundrobin; the balancer) to two proxy nodes in front of
mosquitto, and stay connected.  Then, each from a quiet state and measured
from the moment it happens:
  broker     mosquitto restarts on its port: every device is dropped
  node       node 1 is killed and started again STORM_NODE_DOWN s later:
             its devices land on the other node
  reshuffle  the balancer sends every device to the other node
The same for each proxy in the node role, configured for a cluster as its
documentation says (peers.py: Proxy.cluster).  Then the overload run: one
node on a core of its own, with an RSA key so that its share of a full
handshake is several times the device's, full handshakes offered at
STORM_OVERLOAD_FACTOR times what it completes per second, while a small
population keeps resuming; with and without tlsproxy's full_handshake_rate
and full_handshake_priority, and HAProxy with and without maxsslrate.  BENCHMARKS.md explains the figures.

usage: storm.py --stormgen PATH --tlsproxy PATH --srcdir DIR

Settings from the environment (defaults in brackets):
  STORM_DEVICES [5000]        devices
  STORM_PROXIES [tlsproxy haproxy nginx hitch stunnel]
  STORM_EVENTS [broker node reshuffle]
  STORM_ROUNDS [1]            whole runs per proxy, interleaved; medians (min-max)
  STORM_TLS12 [30]            percent of devices on TLS 1.2, the rest TLS 1.3
  STORM_RAMP [1000]           devices started per second at the start
  STORM_BACKOFF_BASE [1] STORM_BACKOFF_CAP [120]   seconds, full jitter
  STORM_ATTEMPT_TIMEOUT [10]  seconds from TCP connect to CONNACK
  STORM_KEEPALIVE [60]        MQTT keepalive, seconds
  STORM_NODE_DOWN [5]         seconds node 1 stays down in the node event
  STORM_BROKER_DOWN [0]       seconds the brokers stay down in the broker
                              event once stopped, before they start again
  STORM_SETTLE [3]            quiet seconds before each event
  STORM_EVENT_TIMEOUT [180]   the longest an event is followed
  STORM_NODES STORM_BROKERS STORM_LB_PROCS STORM_GEN_PROCS   [from the
                              device count (sizes()): 2 nodes, 1 broker, 1
                              balancer process and 1 generator process up
                              to 8,500 devices; 7, 4, 6 and 4 for 50,000]
  STORM_PIN [1]               nodes on CPU 1; generator, balancer, broker on CPU 0
  STORM_TLSPROXY_EXTRA        more listener settings for the tlsproxy nodes
  STORM_RENEW_ROTATION [0]    1: also tlsproxy with tls13_renew = "rotation"
  STORM_BROKER_RATE [1000]    also tlsproxy with backend_connect_rate set so
                              that the nodes together stay under this many
                              broker connects per second (0: no such column)
  STORM_OVERLOAD [1]          run the overload part
  STORM_OVERLOAD_PROXIES [tlsproxy haproxy]
  STORM_OVERLOAD_CPU [0]      the node's CPU quota in the overload run, cores
                              (0: none, a whole core of its own)
  STORM_OVERLOAD_KEY [rsa4096]  the node's key in the overload run: rsaBITS, or
                              ec (P-256, as in the events)
  STORM_OVERLOAD_FACTOR [3]   full handshakes offered, times the capacity
  STORM_OVERLOAD_RATE_FRACTION [0.9]   the limit, times the capacity
  STORM_OVERLOAD_LOW_RATE_FRACTION [1.0]   the same with full_handshake_priority = "low"
  STORM_OVERLOAD_SECONDS [20] the measured window
  STORM_OVERLOAD_RESUMERS [50]  devices that leave and resume, every ~1 s
  STORM_INSTALL [1]           apt-get install what is missing, when root
  STORM_JSON                  write every figure to this file
  STORM_KEEP [0]              keep the temporary directory
  STORM_SEED [1]              the generator's randomness

Every process it starts is stopped when it ends; every wait is bounded.
Traffic stays on 127.0.0.0/8.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

from peers import (ALL_PROXIES, PROXY_CLASSES, Proxy, TlsProxy, env_float, env_int,
                   free_port, git_describe, install_missing, linked_libssl, log, machine_info, make_certs,
                   make_tmpdir, run_cmd, setup_exit)
from storm_figures import event_figures, event_table, overload_table, read_records
from storm_overload import overload
from storm_topology import (Broker, Generator, Topology, gen_argv, tlsproxy_accepts,
                            tlsproxy_metrics)

# tlsproxy's own view of each event, from its metrics.
METRICS = ("tlsproxy_handshakes_total", "tlsproxy_ticket_rejections_total",
           "tlsproxy_handshake_failures_total", "tlsproxy_backend_connect_failures_total")

EVENTS = {
    "broker": "(a) the broker restarts",
    "node": "(b) one proxy node restarts",
    "reshuffle": "(c) the balancer reshuffles every device to the other node",
}
# What one process holds under the descriptor limit here (20,000): a node
# two descriptors per device, so 8,500 leaves room; a broker one.  There is
# one node more than the devices need, so that the others can take the
# devices of one that restarts; a broker serves at most two nodes.
PER_NODE = 8500
PER_BROKER = 18000
PER_LB = 9000
PER_GEN = 15000


def sizes(devices):
    """(nodes, brokers, balancer processes, generator processes)."""
    nodes = max(2, math.ceil(devices / PER_NODE) + 1)
    brokers = 1 if devices <= PER_BROKER else math.ceil(nodes / 2)
    return nodes, brokers, max(1, math.ceil(devices / PER_LB)), \
        max(1, math.ceil(devices / PER_GEN))


# ---------------------------------------------------------------- events

def settle(gen, devices, quiet, limit=120):
    """Wait until every device is connected and nothing moved for ${quiet} s."""
    end = time.time() + limit
    last, since = None, time.time()
    while time.time() < end:
        now = (gen.get("up"), gen.get("attempts"))
        if now != last:
            last, since = now, time.time()
        if now[0] == devices and time.time() - since >= quiet:
            return True
        time.sleep(0.1)
    return False


def metrics_delta(before, after, first_restarted):
    """What the nodes counted between two scrapes (one dict per node); a
    node restarted in between counted from zero."""
    out = {}
    for i, (b, a) in enumerate(zip(before, after)):
        for k, v in a.items():
            d = v - (0 if i == 0 and first_restarted else b.get(k, 0))
            if d:
                out[k] = out.get(k, 0) + d
    return out


def run_event(ev, topo, gen, cfg, devices):
    """Make one event happen and follow it until every device is back."""
    snap = lambda: (topo.node_cpu(), topo.balancer.cpu_s(), topo.broker_cpu(),  # noqa: E731
                    gen.cpu(), [tlsproxy_metrics([n], METRICS) for n in topo.nodes])
    drops0 = gen.get("drops")
    info = {}
    restart_at = None
    if ev == "broker":
        where = topo.balancer.placement()
        before = snap()
        t0 = time.time()
        info["detail"] = "broker down %.2f s" % (topo.restart_brokers(cfg["broker_down"]) - t0)
    elif ev == "node":
        where = topo.balancer.placement()
        before = snap()
        t0 = time.time()
        topo.kill_node(0)
        restart_at = t0 + cfg["node_down"]
    else:
        before = snap()
        where, prep, t0 = topo.balancer.reshuffle()
        info["detail"] = "map of %d devices made in %.2f s" % (len(where), prep)
    while time.time() < t0 + cfg["event_timeout"]:
        if restart_at is not None and time.time() >= restart_at:
            topo.start_node(0)
            info["detail"] = "node 1 back after %.1f s" % (time.time() - t0)
            restart_at = None
        if (restart_at is None and gen.get("drops") > drops0 and
                gen.get("up") == devices and time.time() > t0 + 1):
            break
        time.sleep(0.05)
    if restart_at is not None:
        topo.start_node(0)
    t1 = time.time()
    after = snap()
    now = topo.balancer.placement()
    if ev == "reshuffle":
        topo.balancer.clear_map()
    if ev == "node":
        where = {ip: n for ip, n in where.items() if n == 1}   # node 1's devices
    info["moved"] = (sum(1 for ip, n in where.items() if now.get(ip, n) != n) / len(where)
                     if where else None)
    info.update(t0=t0, t1=t1, node_cpu=after[0] - before[0], lb_cpu=after[1] - before[1],
                broker_cpu=after[2] - before[2], gen_cpu=after[3] - before[3],
                complete=gen.get("up") == devices,
                metrics=metrics_delta(before[4], after[4], ev == "node"))
    return info


def storm_run(name, cls, kw, args, cfg, certs, tmp, extra="", rnd=0):
    """The whole storm for one kind of node; figures per event, or why none."""
    rundir = os.path.join(tmp, "%s-r%d" % (name.replace(", ", "-").replace(" ", "_"), rnd))
    devices = cfg["devices"]

    def make_node(i, broker_port):
        n = cls(rundir, certs, broker_port, None, instance="node%d" % (i + 1),
                cluster=os.path.join(rundir, "cluster"), **kw)
        n.idle_timeout = 600
        n.session_timeout = 3600
        if isinstance(n, TlsProxy):
            n.extra_listener = extra
            n.metrics_port = free_port()
            n.extra_global = 'metrics = "127.0.0.1:%d";' % n.metrics_port
        return n

    topo = Topology(rundir, make_node, cfg["nodes"], cfg["brokers"], cfg["lb_procs"],
                    cfg["node_cpu"], cfg["rest_cpu"], Proxy.nofile, 600)
    if isinstance(topo.nodes[0], TlsProxy):
        ok, msg = tlsproxy_accepts(topo.nodes[0])
        if not ok:
            return {"pending": "pending: tlsproxy refuses the settings: " +
                    msg.splitlines()[0]}
    out = {"node": topo.nodes[0].version(), "cluster": cls.cluster_note, "events": {}}
    records = os.path.join(rundir, "records.txt")
    bound = devices / cfg["ramp"] + len(cfg["events"]) * (cfg["event_timeout"] + 150) + 300
    try:
        try:
            topo.start()
        except RuntimeError as e:
            return {"failed": str(e)}
        t_start = time.time()
        gen = Generator(args, cfg, topo.balancer.port, gen_argv(cfg, devices) +
                        ["--id-prefix", "d"], records, cfg["rest_cpu"], bound)
        if not gen.wait(lambda: gen.get("up") == devices, devices / cfg["ramp"] + 180):
            states = topo.balancer.server_states()
            last = gen.finish().strip().splitlines()
            return {"failed": "only %d of %d devices connected; balancer: %s; generator: %s"
                    % (gen.get("up"), devices, states, last[-1] if last else "-")}
        out["setup_s"] = time.time() - t_start
        log("%s: %d devices connected in %.1f s" % (name, devices, out["setup_s"]))
        for ev in cfg["events"]:
            if not settle(gen, devices, cfg["settle"]):
                log("%s: not quiet before %s (up %d)" % (name, ev, gen.get("up")))
            info = run_event(ev, topo, gen, cfg, devices)
            out["events"][ev] = info
            log("%s: %s: %s, %.1f s" % (name, ev, "all back" if info["complete"] else
                                         "NOT all back", info["t1"] - info["t0"]))
        out["generator"] = gen.finish()
    finally:
        topo.stop()
    recs = read_records(records)
    connects = topo.broker_connects()
    for ev, info in out["events"].items():
        info.update(event_figures(recs, info["t0"], info["t1"], connects))
    out["broker_per_second"] = {str(k): v for k, v in sorted(connects.items())}
    return out


# ---------------------------------------------------------------- main

def config():
    devices = env_int("STORM_DEVICES", 5000)
    size = sizes(devices)
    pin = os.environ.get("STORM_PIN", "1") != "0" and (os.cpu_count() or 1) >= 2
    return {
        "devices": devices,
        "events": os.environ.get("STORM_EVENTS", "broker node reshuffle").split(),
        "rounds": env_int("STORM_ROUNDS", 1),
        "tls12": env_int("STORM_TLS12", 30), "ramp": env_float("STORM_RAMP", 1000),
        "backoff_base": env_float("STORM_BACKOFF_BASE", 1),
        "backoff_cap": env_float("STORM_BACKOFF_CAP", 120),
        "attempt_timeout": env_float("STORM_ATTEMPT_TIMEOUT", 10),
        "keepalive": env_int("STORM_KEEPALIVE", 60),
        "node_down": env_float("STORM_NODE_DOWN", 5),
        "broker_down": env_float("STORM_BROKER_DOWN", 0),
        "renew_rotation": env_int("STORM_RENEW_ROTATION", 0), "settle": env_float("STORM_SETTLE", 3),
        "event_timeout": env_float("STORM_EVENT_TIMEOUT", 180),
        "nodes": env_int("STORM_NODES", size[0]),
        "brokers": env_int("STORM_BROKERS", size[1]),
        "lb_procs": env_int("STORM_LB_PROCS", size[2]),
        "gen_procs": env_int("STORM_GEN_PROCS", size[3]),
        "node_cpu": 1 if pin else None, "rest_cpu": 0 if pin else None, "pin": pin,
        "broker_rate": env_int("STORM_BROKER_RATE", 1000),
        "ov_cpu": env_float("STORM_OVERLOAD_CPU", 0),
        "ov_key": os.environ.get("STORM_OVERLOAD_KEY", "rsa4096"),
        "ov_factor": env_float("STORM_OVERLOAD_FACTOR", 3),
        "ov_fraction": env_float("STORM_OVERLOAD_RATE_FRACTION", 0.9),
        "ov_low_fraction": env_float("STORM_OVERLOAD_LOW_RATE_FRACTION", 1.0),
        "ov_seconds": env_float("STORM_OVERLOAD_SECONDS", 20),
        "ov_resumers": env_int("STORM_OVERLOAD_RESUMERS", 50),
        "ov_proxies": os.environ.get("STORM_OVERLOAD_PROXIES", "tlsproxy haproxy").split(),
        "seed": env_int("STORM_SEED", 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stormgen", required=True)
    ap.add_argument("--tlsproxy", required=True)
    ap.add_argument("--srcdir", required=True)
    args = ap.parse_args()
    setup_exit("storm")
    cfg = config()
    wanted = os.environ.get("STORM_PROXIES", " ".join(ALL_PROXIES)).split()
    for p in wanted:
        if p not in PROXY_CLASSES:
            sys.exit("storm: unknown proxy %s" % p)
    for e in cfg["events"]:
        if e not in EVENTS:
            sys.exit("storm: unknown event %s (one of %s)" % (e, " ".join(EVENTS)))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    Proxy.nofile = hard
    install_missing(set(wanted) | {"haproxy"} | set(cfg["ov_proxies"]),
                    enabled=os.environ.get("STORM_INSTALL", "1") != "0", extra=("mosquitto",))
    tmp = make_tmpdir("tlsproxy-storm.", keep=os.environ.get("STORM_KEEP", "0") not in ("", "0"))
    certs = make_certs(args.srcdir, tmp)

    info = machine_info()
    info["git"] = git_describe(args.srcdir)
    print("# reconnect storm: %d devices (%d%% TLS 1.2), %d nodes, %d broker(s), %d balancer "
          "process(es), %d generator process(es)" % (cfg["devices"], cfg["tls12"], cfg["nodes"],
                                                    cfg["brokers"], cfg["lb_procs"],
                                                    cfg["gen_procs"]))
    print("machine: %(nproc)s CPUs, %(cpu)s, kernel %(kernel)s; %(openssl)s; libevent "
          "%(libevent)s" % info)
    print("source tree: %s; pinning: %s" % (info["git"], "nodes on CPU 1; generator, balancer "
                                             "and broker on CPU 0" if cfg["pin"] else "none"))
    print("balancer: %s; broker: mosquitto %s" % (run_cmd(["haproxy", "-v"]).splitlines()[0],
                                                  Broker.version()))
    print("devices: backoff full jitter U(0, min(%g, %g * 2^n)) s, attempt timeout %g s, "
          "keepalive %d s, MQTT 3.1.1 persistent sessions" % (
              cfg["backoff_cap"], cfg["backoff_base"], cfg["attempt_timeout"], cfg["keepalive"]))
    sys.stdout.flush()

    t_start = time.time()
    runs, why_not, columns = {}, {}, []
    extra = os.environ.get("STORM_TLSPROXY_EXTRA", "")
    wanted_columns = [(p, p) for p in wanted]
    if "tlsproxy" in wanted and cfg["broker_rate"] > 0:
        wanted_columns.append(("tlsproxy, backend_connect_rate", "tlsproxy"))
    if "tlsproxy" in wanted and cfg["renew_rotation"]:
        wanted_columns.append(("tlsproxy, tls13_renew rotation", "tlsproxy"))
    for label, name in wanted_columns:
        cls = PROXY_CLASSES[name]
        kw = {"path": args.tlsproxy} if name == "tlsproxy" else {}
        if label.endswith("tls13_renew rotation"):
            kw["tls13_renew"] = "rotation"
        probe = cls(tmp, certs, 0, None, instance="probe", **kw)
        if not probe.available():
            why_not[label] = "skipped: not installed"
            continue
        more = extra
        if label.endswith("backend_connect_rate"):
            per_node = max(1, cfg["broker_rate"] // cfg["nodes"])
            more += " backend_connect_rate = %d;" % per_node
        print("%-9s %s (libssl %s); cluster: %s%s" % (
            label, probe.version(), linked_libssl(probe.binary), cls.cluster_note,
            "; listener: " + more.strip() if more.strip() else ""))
        columns.append((label, cls, kw, more))
    sys.stdout.flush()
    for rnd in range(cfg["rounds"]):
        k = rnd % len(columns) if columns else 0
        for label, cls, kw, more in columns[k:] + columns[:k]:
            if label in why_not:
                continue
            r = storm_run(label, cls, kw, args, cfg, certs, tmp, more, rnd)
            if "pending" in r or "failed" in r:
                why_not[label] = r.get("pending") or "failed: " + r["failed"]
                continue
            r["round"] = rnd
            runs.setdefault(label, []).append(r)
    names = [c[0] for c in columns]
    for ev in cfg["events"] if names else []:
        event_table("%s, %d devices%s" % (EVENTS[ev], cfg["devices"], ", median (min-max) of "
                                          "%d rounds" % cfg["rounds"] if cfg["rounds"] > 1
                                          else ""), names,
                    {n: [r["events"][ev] for r in runs[n]] if n in runs else
                     why_not[n].split(":")[0] for n in names}, sys.stdout)
    if names:
        print("\n¹ (a), (c): devices on another node after the event than before it; (b): "
              "node 1's devices that are on another node once it is back.")
    for n, why in why_not.items():
        print("%s: %s" % (n, why))
    for n in names:
        for r in runs.get(n, []):
            for ev, f in r["events"].items():
                if f.get("metrics"):
                    print("%s, %s, round %d, the nodes' metrics: %s"
                          % (n, ev, r["round"] + 1, ", ".join(
                              "%s %d" % (k.replace("tlsproxy_", ""), v)
                              for k, v in sorted(f["metrics"].items()))))
    limited = "tlsproxy, backend_connect_rate"
    for r in runs.get(limited, []):
        for ev, f in r["events"].items():
            print("%s, %s, round %d: broker peak %d connects/s against %d: %s" % (
                limited, ev, r["round"] + 1, f["broker_peak"], cfg["broker_rate"],
                "within" if f["broker_peak"] <= cfg["broker_rate"] else "OVER"))
    rows = []
    if os.environ.get("STORM_OVERLOAD", "1") != "0":
        rows = overload(args, cfg, certs, tmp)
        print("\nOverload: one node, %s, key %s, full handshakes offered at %gx its "
              "capacity for %g s, %d devices resuming about once a second"
              % ("%.2f of a core (cgroup quota)" % cfg["ov_cpu"] if cfg["ov_cpu"] else
                 "a core of its own", cfg["ov_key"], cfg["ov_factor"], cfg["ov_seconds"],
                 cfg["ov_resumers"]))
        overload_table(rows, sys.stdout)
        for r in rows:
            if r.get("admission"):
                print("%s: %s" % (r["label"], ", ".join("%s %d" % kv for kv in
                                                       sorted(r["admission"].items()))))
    print("\ntotal time %.0f s" % (time.time() - t_start))
    if os.environ.get("STORM_JSON"):
        with open(os.environ["STORM_JSON"], "w") as f:
            json.dump({"config": cfg, "machine": info, "runs": runs, "not_run": why_not,
                       "overload": rows}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
