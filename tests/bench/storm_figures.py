"""storm_figures.py: the figures of the reconnect-storm benchmark, from
stormgen's record file and mosquitto's connection log, and their tables.

A record line is "REALTIME TYPE KIND ID RESUMED SP TLS LATENCY_US WHY":
TYPE U (CONNACK received), D (a connected device lost its connection) or
F (an attempt failed, WHY says how); KIND d (a device) or a (a one-shot
arrival); LATENCY_US the time from the attempt's TCP connect to CONNACK
(U) or to the failure (F).
"""

import math
import statistics
from collections import Counter, namedtuple

Rec = namedtuple("Rec", "t type kind id resumed sp tls lat why")

DROPPED = ("refused", "closed", "handshake", "rejected", "local")


def read_records(path):
    recs = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) != 9:
                continue
            recs.append(Rec(float(p[0]), p[1], p[2], int(p[3]), int(p[4]), int(p[5]),
                            int(p[6]), int(p[7]), p[8]))
    recs.sort(key=lambda r: r.t)
    return recs


def quantile(sorted_vals, q):
    """The value below which a share ${q} of the values lie (nearest rank)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[k]


def event_figures(recs, t0, t1, connects):
    """What an event at ${t0} did until ${t1}: the devices it disconnected,
    when each was connected again, how, and at what cost.  ${connects}:
    second -> new connections at the broker."""
    down, back = {}, {}
    fails = Counter()
    attempts = 0
    for r in recs:
        if r.t < t0 or r.t > t1 or r.kind != "d":
            continue
        if r.type == "D" and r.id not in down:
            down[r.id] = r.t
        elif r.type == "U":
            attempts += 1
            if r.id in down and r.id not in back:
                back[r.id] = r
        elif r.type == "F":
            attempts += 1
            fails[r.why] += 1
    n = len(down)
    delays = sorted(r.t - t0 for r in back.values())
    lats = sorted(r.lat / 1000.0 for r in back.values())

    def reached(share):
        k = math.ceil(share * n)
        return delays[k - 1] if n and k <= len(delays) else None

    t_all = t0 + delays[-1] if delays else t1
    secs = [c for t, c in connects.items() if math.floor(t0) <= t <= t_all]
    window = max(t_all - t0, 1.0)
    return {
        "dropped_devices": n, "reconnected": len(back),
        "t50": reached(0.50), "t99": reached(0.99), "t100": reached(1.0),
        "resumed": sum(r.resumed for r in back.values()) / len(back) if back else None,
        "session_present": sum(r.sp for r in back.values()) / len(back) if back else None,
        "attempts": attempts,
        "failed_dropped": sum(fails[w] for w in DROPPED),
        "failed_timeout": fails["timeout"], "fails": dict(fails),
        "lat_p50_ms": quantile(lats, 0.50), "lat_p99_ms": quantile(lats, 0.99),
        "broker_peak": max(secs) if secs else 0,
        "broker_mean": sum(secs) / window if secs else 0.0,
        "broker_connects": sum(secs),
    }


def started_in(recs, w0, w1, kind):
    """Records of ${kind} whose attempt started in [w0, w1)."""
    return [r for r in recs if r.kind == kind and r.type in ("U", "F") and
            w0 <= r.t - r.lat / 1e6 < w1]


def population_figures(recs, w0, w1):
    """The devices' attempts that started in the window: rate, resumed
    share, success, latency of the resumed ones."""
    rs = started_in(recs, w0, w1, "d")
    ok = [r for r in rs if r.type == "U"]
    res = sorted(r.lat / 1000.0 for r in ok if r.resumed)
    fails = Counter(r.why for r in rs if r.type == "F")
    return {
        "attempts": len(rs), "ok": len(ok), "rate": len(ok) / (w1 - w0),
        "resumed_ok": len(res),
        "resume_success": len(res) / len(rs) if rs else None,
        "resume_p50_ms": quantile(res, 0.50), "resume_p99_ms": quantile(res, 0.99),
        "fails": dict(fails),
    }


def arrival_figures(recs, w0, w1):
    """The one-shot arrivals that started in the window."""
    rs = started_in(recs, w0, w1, "a")
    ok = sorted(r.lat / 1000.0 for r in rs if r.type == "U")
    fails = Counter(r.why for r in rs if r.type == "F")
    return {
        "started": len(rs), "ok": len(ok), "goodput": len(ok) / (w1 - w0),
        "p50_ms": quantile(ok, 0.50), "p99_ms": quantile(ok, 0.99),
        "failed_dropped": sum(fails[w] for w in DROPPED), "failed_timeout": fails["timeout"],
        "fails": dict(fails),
    }


# ---------------------------------------------------------------- tables

def fmt(v, spec="%.1f", none="-"):
    return none if v is None else spec % v


RANGED = ("t50", "t99", "t100", "node_cpu")


def merge_rounds(rounds):
    """One figure dict from the rounds' dicts: the median of each number
    (None if a round has none), min and max of the RANGED ones."""
    out = dict(rounds[0])
    for k, v in rounds[0].items():
        if isinstance(v, bool) or not isinstance(v, (int, float, type(None))):
            continue
        vals = [r.get(k) for r in rounds]
        out[k] = None if None in vals else statistics.median(vals)
        if k in RANGED and len(rounds) > 1 and None not in vals:
            out[k + "_range"] = (min(vals), max(vals))
    out["rounds"] = len(rounds)
    return out


def ranged(f, k, spec, none="-"):
    """f[k] with its min-max over the rounds, when there were several."""
    s = fmt(f.get(k), spec, none)
    if f.get(k + "_range"):
        s += " (" + spec % f[k + "_range"][0] + "-" + spec % f[k + "_range"][1] + ")"
    return s


def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


EVENT_ROWS = [
    ("devices disconnected by the event", lambda f: "%d" % f["dropped_devices"]),
    ("50% reconnected, s", lambda f: ranged(f, "t50", "%.2f")),
    ("99% reconnected, s", lambda f: ranged(f, "t99", "%.2f")),
    ("100% reconnected, s", lambda f: ranged(f, "t100", "%.2f", "not all")),
    ("reconnected to another node ¹", lambda f: pct(f.get("moved"))),
    ("reconnects resumed (TLS)", lambda f: pct(f["resumed"])),
    ("MQTT session present", lambda f: pct(f["session_present"])),
    ("proxy CPU s, all nodes", lambda f: ranged(f, "node_cpu", "%.2f")),
    ("broker connects/s, peak / mean", lambda f: "%d / %.0f" % (f["broker_peak"],
                                                               f["broker_mean"])),
    ("attempts (all devices, until 100%)", lambda f: "%d" % f["attempts"]),
    ("attempts failed: dropped / timed out", lambda f: "%d / %d" % (f["failed_dropped"],
                                                                   f["failed_timeout"])),
    ("reconnect latency p50 / p99, ms", lambda f: "%s / %s" % (fmt(f["lat_p50_ms"]),
                                                              fmt(f["lat_p99_ms"]))),
    ("generator / balancer / broker CPU s", lambda f: "%.1f / %.1f / %.1f" % (
        f["gen_cpu"], f["lb_cpu"], f["broker_cpu"])),
    ("event", lambda f: f.get("detail", "-")),
]


def event_table(title, names, figs, out):
    """figs: name -> the rounds' figures of one event, or a word saying
    why there are none.  Medians; ranges over the rounds in brackets."""
    out.write("\n%s\n\n| | %s |\n|---|%s\n" % (title, " | ".join(names), "---|" * len(names)))
    merged = {n: merge_rounds(f) if isinstance(f, list) and f else f for n, f in figs.items()}
    for label, cell in EVENT_ROWS:
        cells = []
        for n in names:
            f = merged.get(n)
            cells.append(f if isinstance(f, str) else cell(f) if f else "-")
        out.write("| %s | %s |\n" % (label, " | ".join(cells)))


def overload_table(rows, out):
    out.write("\n| node | capacity, full hs/s | offered | goodput, full hs/s | goodput / "
              "capacity | full handshakes dropped / timed out | their p50 / p99, ms | "
              "resumed ok | resume p99 unloaded / loaded, ms | ratio | node / generator CPU |"
              "\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        if "pending" in r:
            out.write("| %s | %s |\n" % (r["label"], r["pending"]))
            continue
        a, u, lo = r["arrivals"], r["unloaded"], r["loaded"]
        ratio = (lo["resume_p99_ms"] / u["resume_p99_ms"]
                 if lo["resume_p99_ms"] and u["resume_p99_ms"] else None)
        out.write("| %s | %.0f | %.0f/s | %.0f | %s | %d / %d | %s / %s | %s | %s / %s | %s "
                  "| %s / %s |\n"
                  % (r["label"], r["capacity"], r["offered"], a["goodput"],
                     pct(a["goodput"] / r["capacity"] if r["capacity"] else None),
                     a["failed_dropped"], a["failed_timeout"], fmt(a["p50_ms"], "%.0f"),
                     fmt(a["p99_ms"], "%.0f"), pct(lo["resume_success"]),
                     fmt(u["resume_p99_ms"]), fmt(lo["resume_p99_ms"]), fmt(ratio, "%.2fx"),
                     pct(r["node_cpu_share"]), pct(r["generator_cpu_share"])))

