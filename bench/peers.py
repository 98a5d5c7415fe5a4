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
  peers.py axfr PORT ZONE [TIMEOUT]        one AXFR of ZONE from 127.0.0.1:PORT over TCP, unsigned;
                                           prints "RECORDS BYTES MESSAGES SECONDS" once the
                                           closing SOA arrives (exit 1 on an error or timeout).
                                           Records are counted from the headers, not parsed, so
                                           the client costs little beside the sending server
  peers.py axfr-loop PORT ZONE STOPFILE OUT  AXFRs one after the other until STOPFILE exists;
                                           writes "TRANSFERS FAILED" to OUT
  peers.py soa-watch OUT STOPFILE ZONE NAME:PORT...  polls each server's SOA serial for ZONE over
                                           UDP every 5 ms; appends "NAME EPOCH_S SERIAL" to OUT
                                           each time a server's serial changes
  peers.py follow COMMITS WATCH            commit → serial latency: COMMITS has "EPOCH_S SERIAL"
                                           per commit, WATCH soa-watch's lines; prints per server
                                           "NAME P50_MS P99_MS MAX_MS FOLLOWED COMMITS", then
                                           the same from the satellite's serial to each other
                                           server's ("satellite→NAME ...")

  peers.py ds-validated PLAN OUT STOPFILE ZONE NAME:SAT_PORT:RESOLVER_PORT... COMMITS...
                                           commit → validated DS through each resolver (bench/
                                           ds-validated.sh): PLAN has "K NAME DIGEST_HEX" per
                                           change, the COMMITS files "K EPOCH_S SERIAL" lines as
                                           the writers commit (read as they grow); prints per
                                           satellite the figures and appends every event to OUT

A process tree is summed because NSD forks its servers (they share the zone copy-on-write,
which PSS divides between them, so the sum is the whole cost once).
"""

import bisect
import heapq
import math
import os
import select
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


def read_exact(sock, n, end):
    buf = bytearray()
    while len(buf) < n:
        sock.settimeout(max(0.001, end - time.monotonic()))
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return bytes(buf)


def axfr(port, zone, timeout=600.0):
    """One AXFR; (records, bytes, messages, seconds). Raises OSError on failure.

    The transfer ends with the SOA it began with (RFC 5936 §2.2): rather than parsing every
    record, each message's last 20 octets are compared with the fixed tail of the first SOA's
    RDATA (serial, refresh, retry, expire, minimum), which no NS, A, AAAA or DS record ends with
    by chance in practice; the record count is then checked by the caller across servers."""
    q = struct.pack(">HHHHHH", 0x5846, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in zone.strip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 252, 1)
    start = time.monotonic()
    end = start + timeout
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(struct.pack(">H", len(q)) + q)
        records = total = messages = 0
        tail = None
        while True:
            (length,) = struct.unpack(">H", read_exact(sock, 2, end))
            msg = read_exact(sock, length, end)
            messages += 1
            total += length + 2
            _, flags, _, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
            if flags & 0xF:
                raise OSError(f"rcode {flags & 0xF}")
            records += an
            if tail is None:
                tail = first_soa_tail(msg)
                if records > 1 and msg.endswith(tail):
                    break
            elif msg.endswith(tail):
                break
        return records, total, messages, time.monotonic() - start
    finally:
        sock.close()


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n >= 0xC0:
            return i + 2
        if n == 0:
            return i + 1
        i += n + 1


def first_soa_tail(msg):
    i = skip_name(msg, 12) + 4  # the question
    i = skip_name(msg, i)
    rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i : i + 10])
    if rtype != 6:
        raise OSError("the transfer does not open with an SOA")
    return msg[i + 10 + rdlen - 20 : i + 10 + rdlen]


def axfr_loop(port, zone, stop, out):
    done = failed = 0
    while not os.path.exists(stop):
        try:
            axfr(port, zone, 600.0)
            done += 1
        except (OSError, struct.error):
            failed += 1
            time.sleep(0.1)
    with open(out, "w") as f:
        f.write(f"{done} {failed}\n")


def soa_query(zone, qid):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in zone.strip(".").split(".")) + b"\0"
    return q + struct.pack(">HH", 6, 1)


def soa_serial(msg):
    """The serial of the first answer record if it is an SOA, else None."""
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if flags & 0xF or an == 0:
        return None
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    i = skip_name(msg, i)
    rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i : i + 10])
    if rtype != 6:
        return None
    return struct.unpack(">I", msg[i + 10 + rdlen - 20 : i + 10 + rdlen - 16])[0]


def soa_watch(out, stop, zone, targets):
    servers = []
    for t in targets:
        name, port = t.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.05)
        servers.append([name, int(port), s, None])
    qid = 0
    with open(out, "a") as f:
        while not os.path.exists(stop):
            for srv in servers:
                name, port, s, last = srv
                qid = (qid + 1) & 0xFFFF
                try:
                    s.sendto(soa_query(zone, qid), ("127.0.0.1", port))
                    while True:
                        r = s.recv(65535)
                        if r[:2] == struct.pack(">H", qid):
                            break
                except OSError:
                    continue
                serial = soa_serial(r)
                if serial is not None and serial != last:
                    srv[3] = serial
                    f.write(f"{name} {time.time():.6f} {serial}\n")
                    f.flush()
            time.sleep(0.005)


def follow(commits_path, watch_path):
    commits = []
    with open(commits_path) as f:
        for line in f:
            w = line.replace("|", " ").split()
            if len(w) == 2:
                commits.append((float(w[0]), int(w[1]) & 0xFFFFFFFF))
    seen = {}
    with open(watch_path) as f:
        for line in f:
            name, t, serial = line.split()
            seen.setdefault(name, []).append((float(t), int(serial)))
    for name, changes in seen.items():
        # A server's serial only grows: the first time it showed this commit's serial or a
        # later one is a binary search away.
        serials = [cs for _, cs in changes]
        lat = []
        for t, serial in commits:
            i = bisect.bisect_left(serials, serial)
            if i < len(changes):
                lat.append(max(0.0, changes[i][0] - t) * 1e3)
        if not lat:
            print(f"{name} nan nan nan 0 {len(commits)}")
            continue
        lat.sort()
        pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        print(f"{name} {pick(0.50):.0f} {pick(0.99):.0f} {lat[-1]:.0f} {len(lat)} {len(commits)}")
    # The secondaries' own share: from the satellite showing a serial to each secondary showing
    # it or a later one (one figure per serial the satellite showed).
    primary = seen.get("satellite", [])
    for name, changes in seen.items():
        if name == "satellite" or not primary:
            continue
        serials = [cs for _, cs in changes]
        lat = []
        for t, serial in primary:
            i = bisect.bisect_left(serials, serial)
            if i < len(changes):
                lat.append(max(0.0, changes[i][0] - t) * 1e3)
        if lat:
            lat.sort()
            pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
            print(f"satellite→{name} {pick(0.50):.0f} {pick(0.99):.0f} {lat[-1]:.0f} {len(lat)} {len(primary)}")


def ds_query(name, qid):
    """NAME DS with recursion desired, EDNS (1232 octets) and DO set, so that a validating
    resolver reports its verdict in the AD bit (RFC 6840 §5.8)."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
    return q + struct.pack(">HH", 43, 1) + b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)


def ds_answer(msg):
    """(rcode, AD, the digests of the DS records in the answer section)."""
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    digests = set()
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i : i + 10])
        if rtype == 43:
            digests.add(msg[i + 14 : i + 10 + rdlen])
        i += 10 + rdlen
    return flags & 0xF, bool(flags & 0x20), digests


class Follower:
    """One satellite and the validating resolver stubbed to it: the satellite's SOA serial
    polled every 5 ms, and each committed change asked of the resolver until it validates.

    A change is asked at once when the satellite's serial reaches the change's commit serial
    (then again every 5 ms while the resolver still shows the old state), and every 2 s
    before that, so that a SERVFAIL of the old state or of a transition is seen too. Asking on
    the serial keeps the load small (a few hundred changes can be in flight at 100k) while the
    figure stays within about 5 ms of asking without pause: no answer can validate the new DS
    before the satellite serves it."""

    SOA_EVERY = 0.005
    # Every 500 ms cost the two resolvers a third of a core at 100k (30 s behind: 46 questions
    # a change, each re-fetching and re-validating the DNSKEY RRset), taken from the master.
    BEFORE_EVERY = 2.0
    AFTER_EVERY = 0.005
    # After a SERVFAIL (a failure of the run whatever follows): ask again, but not in a loop.
    SERVFAIL_EVERY = 0.1
    TIMEOUT = 0.5
    # BENCH_ASK_BEFORE=0: ask a change only once the satellite serves it. An answer Unbound
    # got before (the old state) stays in its cache until the next whole second even with
    # cache-max-ttl 0 (its clock counts seconds), which adds up to a second to the figure
    # that is the resolver's cache, not the change path; asking before is what catches a
    # SERVFAIL of the old state or of the transition.
    ASK_BEFORE = os.environ.get("BENCH_ASK_BEFORE", "1") != "0"

    def __init__(self, spec, zone):
        self.name, sat, resolver = spec.split(":")
        self.sat, self.resolver = int(sat), int(resolver)
        self.zone = zone
        self.soa_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ask_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (self.soa_sock, self.ask_sock):
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.soa_qid = 0
        self.next_soa = 0.0
        self.serial = -1
        self.serials = []  # (epoch, serial) each time the satellite's serial changed
        self.qid = 0
        self.inflight = {}  # qid -> k
        self.asking = {}  # k -> qid of its question out
        self.due = {}  # k -> when to ask next
        self.heap = []  # (due, k), stale entries skipped
        self.done = {}  # k -> epoch of the first validated answer with the new DS
        self.servfail = 0
        self.servfail_names = set()
        self.asked = 0
        self.unvalidated = 0  # the new DS answered without AD

    def schedule(self, k, when):
        self.due[k] = when
        heapq.heappush(self.heap, (when, k))

    def on_commit(self, k, now, commits):
        """A change committed: asked at once, or (ASK_BEFORE off) once the satellite serves it."""
        if self.ASK_BEFORE or self.reached(commits, k):
            self.schedule(k, now)
        else:
            self.due[k] = math.inf  # on_soa asks it when the serial reaches it

    def reached(self, commits, k):
        return self.serial >= commits[k][1]

    def tick(self, now, plan, commits, log):
        if now >= self.next_soa:
            self.next_soa = now + self.SOA_EVERY
            self.soa_qid = (self.soa_qid + 1) & 0xFFFF
            try:
                self.soa_sock.sendto(soa_query(self.zone, self.soa_qid), ("127.0.0.1", self.sat))
            except OSError:
                pass
        while self.heap and self.heap[0][0] <= now:
            when, k = heapq.heappop(self.heap)
            if k in self.done or self.due.get(k) != when:
                continue
            self.qid = (self.qid + 1) & 0xFFFF
            # A question unanswered within TIMEOUT is given up: its answer no longer counts.
            self.inflight.pop(self.asking.get(k), None)
            self.inflight[self.qid] = k
            self.asking[k] = self.qid
            self.asked += 1
            try:
                self.ask_sock.sendto(ds_query(plan[k][0], self.qid), ("127.0.0.1", self.resolver))
            except OSError:
                pass
            self.schedule(k, now + self.TIMEOUT)

    def on_soa(self, now, msg, commits):
        if msg[:2] != struct.pack(">H", self.soa_qid):
            return
        serial = soa_serial(msg)
        if serial is None or serial == self.serial:
            return
        self.serial = serial
        self.serials.append((now, serial))
        # Every change the satellite now serves is asked at once (unless a question is out).
        for k in list(self.due):
            if k not in self.asking and self.reached(commits, k):
                self.schedule(k, now)

    def on_answer(self, now, msg, plan, commits, log):
        (qid,) = struct.unpack(">H", msg[:2])
        k = self.inflight.pop(qid, None)
        if k is None:
            return
        del self.asking[k]
        if k in self.done:
            return
        rcode, ad, digests = ds_answer(msg)
        if rcode == 2:
            self.servfail += 1
            self.servfail_names.add(k)
            log.write(f"servfail {self.name} {k} {now:.6f}\n")
            self.schedule(k, now + self.SERVFAIL_EVERY)
            return
        elif rcode == 0 and plan[k][1] in digests:
            if ad:
                self.done[k] = now
                del self.due[k]
                log.write(f"validated {self.name} {k} {now:.6f}\n")
                return
            self.unvalidated += 1
            log.write(f"unvalidated {self.name} {k} {now:.6f}\n")
        self.schedule(k, now + (self.AFTER_EVERY if self.reached(commits, k) else self.BEFORE_EVERY))


def read_commits(files, offsets, commits, on_commit):
    """The complete lines the writers added since the last call."""
    for path in files:
        try:
            with open(path) as f:
                f.seek(offsets.get(path, 0))
                data = f.read()
        except FileNotFoundError:
            continue
        end = data.rfind("\n") + 1
        offsets[path] = offsets.get(path, 0) + len(data[:end].encode())
        for line in data[:end].splitlines():
            w = line.split()
            if len(w) == 3:
                k, t, serial = int(w[0]), float(w[1]), int(w[2]) & 0xFFFFFFFF
                commits[k] = (t, serial)
                on_commit(k)


def percentiles(values):
    if not values:
        return "      -      -      -      -"
    values = sorted(values)
    pick = lambda p: values[min(len(values) - 1, int(p * len(values)))]
    return " ".join(f"{v:6.0f}" for v in (pick(0.50), pick(0.90), pick(0.99), values[-1]))


def ds_validated(plan_path, out, stop, zone, specs, commit_files):
    plan = {}
    with open(plan_path) as f:
        for line in f:
            k, name, digest = line.split()
            plan[int(k)] = (name, bytes.fromhex(digest))
    followers = [Follower(s, zone) for s in specs]
    by_sock = {}
    for fo in followers:
        by_sock[fo.soa_sock] = (fo, True)
        by_sock[fo.ask_sock] = (fo, False)
    commits, offsets = {}, {}

    def on_commit(k):
        now = time.time()
        for fo in followers:
            fo.on_commit(k, now, commits)

    next_read = 0.0
    with open(out, "a") as log:
        while True:
            now = time.time()
            if now >= next_read:
                next_read = now + 0.002
                read_commits(commit_files, offsets, commits, on_commit)
                if os.path.exists(stop):
                    break
                if len(commits) == len(plan) and all(len(fo.done) == len(plan) for fo in followers):
                    break
            for fo in followers:
                fo.tick(now, plan, commits, log)
            ready, _, _ = select.select(list(by_sock), [], [], 0.001)
            for sock in ready:
                fo, is_soa = by_sock[sock]
                while True:
                    try:
                        msg = sock.recv(65535)
                    except BlockingIOError:
                        break
                    except OSError:
                        break
                    t = time.time()
                    if is_soa:
                        fo.on_soa(t, msg, commits)
                    else:
                        fo.on_answer(t, msg, plan, commits, log)
        for fo in followers:
            for t, serial in fo.serials:
                log.write(f"serial {fo.name} {t:.6f} {serial}\n")
    # The figures, in milliseconds from the commit.
    print("  satellite  figure                     count    p50    p90    p99    max")
    for fo in followers:
        validated = [(fo.done[k] - commits[k][0]) * 1e3 for k in fo.done if k in commits]
        times = [t for t, _ in fo.serials]
        serials = [s for _, s in fo.serials]
        served = []
        for k, (t, serial) in commits.items():
            i = bisect.bisect_left(serials, serial)
            if i < len(times):
                served.append(max(0.0, times[i] - t) * 1e3)
        print(f"  {fo.name:<10} commit → validated (ms)   {len(validated):6} {percentiles(validated)}")
        print(f"  {fo.name:<10} commit → serial (ms)      {len(served):6} {percentiles(served)}")
        print(f"  {fo.name:<10} not validated {len(commits) - len(validated)}, SERVFAIL {fo.servfail}"
              f" (names {len(fo.servfail_names)}), new DS without AD {fo.unvalidated}, questions {fo.asked}, serials seen {len(fo.serials)}")


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
    elif cmd == "axfr":
        try:
            r, b, m, secs = axfr(int(args[0]), args[1], float(args[2]) if len(args) > 2 else 600.0)
        except (OSError, struct.error) as e:
            sys.exit(f"axfr: {e}")
        print(f"{r} {b} {m} {secs:.3f}")
    elif cmd == "axfr-loop":
        axfr_loop(int(args[0]), args[1], args[2], args[3])
    elif cmd == "soa-watch":
        soa_watch(args[0], args[1], args[2], args[3:])
    elif cmd == "follow":
        follow(args[0], args[1])
    elif cmd == "ds-validated":
        specs = [a for a in args[4:] if a.count(":") == 2]
        files = [a for a in args[4:] if a.count(":") != 2]
        ds_validated(args[0], args[1], args[2], args[3], specs, files)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
