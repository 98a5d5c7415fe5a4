#!/usr/bin/env python3
"""Small measuring helpers for bench/compare-peers.sh (standard library only).

  peers.py wait-answer PORT NAME TIMEOUT   polls 127.0.0.1:PORT every 5 ms with "NAME NS" over
                                           UDP until a NOERROR referral comes back; prints the
                                           wall clock (ns since the epoch) of that answer
  peers.py wait-gone PORT NAME TIMEOUT     the same until the answer is no longer a referral
  peers.py pss PID                         PSS of PID and its descendants, bytes (smaps_rollup)
  peers.py cpu PID                         utime+stime of PID and its descendants, clock ticks
  peers.py threads PID                     "UDP OTHER": utime+stime of PID's threads named udp-*
                                           (the satellite's UDP workers) and of the rest, ticks
  peers.py dnsperf FILE                    "QPS COMPLETED LOST" from a dnsperf report
  peers.py latency FILE                    "P50_US P99_US MAX_US COUNT" from `dnsperf -v` lines
  peers.py sample-mem PID OUT STOPFILE     samples RSS (every 10 ms) and PSS (every 100 ms) of
                                           PID until STOPFILE exists; writes "PEAK_RSS PEAK_PSS
                                           FIRST_PSS" (bytes) to OUT
  peers.py table RESULTS                   the issue's table from "server run metric value" lines

A process tree is summed because NSD forks its servers (they share the zone copy-on-write,
which PSS divides between them, so the sum is the whole cost once).
"""

import os
import socket
import statistics
import struct
import sys
import time


def referral(sock, query, port):
    sock.sendto(query, ("127.0.0.1", port))
    r = sock.recv(65535)
    _, flags, _, an, ns, _ = struct.unpack(">HHHHHH", r[:12])
    return flags & 0x8000 and flags & 0xF == 0 and an + ns > 0


def wait_answer(port, name, timeout, want=True):
    q = struct.pack(">HHHHHH", 0x4F52, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 2, 1)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.05)
        try:
            if bool(referral(s, q, port)) == want:
                print(time.time_ns())
                return 0
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.005)
    return 1


def tree(pid):
    """pid and every descendant (from /proc/*/stat parent links)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_of(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def cpu_split_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return (0, 0)
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]), int(fields[12]))  # utime, stime


def threads(pid):
    # The rest is the process's total less the UDP workers: the process's own figure keeps the
    # time of threads that have exited (tokio's blocking threads, the spare copy's).
    udp = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read()
        except OSError:
            continue
        ticks = cpu_of(f"{pid}/task/{tid}")
        if name.startswith("udp-"):
            udp += ticks
    print(f"{udp} {cpu_of(pid) - udp}")


def dnsperf(path):
    qps = done = lost = 0
    with open(path, errors="replace") as f:
        for line in f:
            w = line.split()
            if line.strip().startswith("Queries completed:"):
                done = int(w[2])
            elif line.strip().startswith("Queries lost:"):
                lost = int(w[2])
            elif line.strip().startswith("Queries per second:"):
                qps = float(w[3])
    print(f"{qps:.0f} {done} {lost}")


def latency(path):
    lat = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                try:
                    lat.append(float(line.split()[-1]))
                except ValueError:
                    pass
    if not lat:
        print("nan nan nan 0")
        return
    lat.sort()
    pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
    print(f"{pick(0.50):.0f} {pick(0.99):.0f} {lat[-1] * 1e6:.0f} {len(lat)}")


def sample_mem(pid, out, stop):
    peak_rss = peak_pss = 0
    first_pss = pss_of(pid)
    n = 0
    while not os.path.exists(stop):
        peak_rss = max(peak_rss, rss_of(pid))
        if n % 10 == 0:
            peak_pss = max(peak_pss, pss_of(pid))
        n += 1
        time.sleep(0.01)
    peak_pss = max(peak_pss, pss_of(pid))
    with open(out, "w") as f:
        f.write(f"{peak_rss} {peak_pss} {first_pss}\n")


# The table: (metric key, heading, unit divisor/format, lower is better)
COLUMNS = [
    ("pss_per_delegation", "PSS per delegation (B)", True),
    ("start_ms", "start → first answer (ms)", True),
    ("cpu_us_ref", "CPU µs/query ref", True),
    ("cpu_us_nx", "CPU µs/query nx", True),
    ("cpu_us_mix", "CPU µs/query mix", True),
    ("qps_ref", "q/s ref", False),
    ("qps_nx", "q/s nx", False),
    ("qps_mix", "q/s mix", False),
    ("p50_us", "p50 at fixed rate (µs)", True),
    ("p99_us", "p99 at fixed rate (µs)", True),
    ("tcp_qps", "TCP q/s mix", False),
]
PEERS = ["nsd", "knot"]


def fmt(v):
    if v != v:  # nan
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(path):
    data = {}
    order = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) != 4:
                continue
            server, _run, metric, value = w
            if server not in order:
                order.append(server)
            data.setdefault((server, metric), []).append(float(value))

    def med(server, metric):
        v = data.get((server, metric))
        return statistics.median(v) if v else float("nan")

    def cell(server, metric):
        v = data.get((server, metric))
        if not v:
            return "-"
        if len(v) == 1:
            return fmt(v[0])
        return f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})"

    print(f"median (min–max) over the runs; ratio = satellite ÷ best of {', '.join(PEERS)}")
    print()
    print("| figure | " + " | ".join(order) + " | ratio |")
    print("|---|" + "---:|" * (len(order) + 1))
    for metric, heading, lower in COLUMNS:
        row = [cell(s, metric) for s in order]
        peers = [med(p, metric) for p in PEERS if (p, metric) in data]
        ratio = "-"
        if peers and ("satellite", metric) in data:
            best = min(peers) if lower else max(peers)
            if best:
                ratio = f"{med('satellite', metric) / best:.2f}"
        print(f"| {heading} | " + " | ".join(row) + f" | {ratio} |")
    # Figures measured on one server only (the master-fed satellite).
    extra = sorted({m for (s, m) in data if m not in {c[0] for c in COLUMNS}})
    if extra:
        print()
        for metric in extra:
            cells = [f"{s}: {cell(s, metric)}" for s in order if (s, metric) in data]
            print(f"- {metric}: " + "; ".join(cells))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wait-answer":
        sys.exit(wait_answer(int(args[0]), args[1], float(args[2])))
    elif cmd == "wait-gone":
        sys.exit(wait_answer(int(args[0]), args[1], float(args[2]), want=False))
    elif cmd == "pss":
        print(sum(pss_of(p) for p in tree(int(args[0]))))
    elif cmd == "cpu":
        print(sum(cpu_of(p) for p in tree(int(args[0]))))
    elif cmd == "cpu-split":
        # user and system ticks apart, summed over the server's processes
        split = [cpu_split_of(p) for p in tree(int(args[0]))]
        print(f"{sum(u for u, _ in split)} {sum(s for _, s in split)}")
    elif cmd == "threads":
        threads(int(args[0]))
    elif cmd == "dnsperf":
        dnsperf(args[0])
    elif cmd == "latency":
        latency(args[0])
    elif cmd == "sample-mem":
        sample_mem(int(args[0]), args[1], args[2])
    elif cmd == "table":
        table(args[0])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
