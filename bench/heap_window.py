#!/usr/bin/env python3
"""What a process allocated in a time window and still held at the window's heap peak, by call
stack, from a heaptrack recording (bench/batch-heap.sh; issue 11).

  heap_window.py FILE.zst FROM_MS TO_MS [TOP]

FROM_MS and TO_MS are milliseconds since the process started (heaptrack's clock). Prints the
live heap at FROM_MS, its peak within the window and when, the live heap at TO_MS, and the TOP
(default 15) call stacks whose allocations made the difference between FROM_MS and the peak:
bytes allocated after FROM_MS and still live at the peak, minus the bytes live at FROM_MS that
were freed by then. heaptrack_print's own
peak is the whole run's (a start's build), which is not the question here.

The file is read twice as text (`zstdcat`): first for the peak, then for the two states. The
format is heaptrack_interpret's: `s` strings, `i` instruction pointers, `t` trace nodes, `a`
allocation kinds (size, trace), `+`/`-` an allocation/free of a kind, `c` the time; numbers in
hexadecimal, strings, pointers and traces numbered from 1, kinds from 0.
"""

import re
import subprocess
import sys


def lines(path):
    with subprocess.Popen(["zstdcat", path], stdout=subprocess.PIPE, text=True, bufsize=1 << 20) as p:
        yield from p.stdout


def first_pass(path, start, end):
    """(live at start, peak in window, time of the peak, event number of start, of the peak,
    live at the end)."""
    sizes = []
    live = 0
    ms = 0
    at_start = at_end = None
    start_event = peak_event = 0
    peak = -1
    peak_ms = 0
    event = 0
    for line in lines(path):
        kind = line[0]
        if kind == "+":
            live += sizes[int(line[2:], 16)]
        elif kind == "-":
            live -= sizes[int(line[2:], 16)]
        elif kind == "a":
            _, size, _ = line.split()
            sizes.append(int(size, 16))
            continue
        elif kind == "c":
            ms = int(line[2:], 16)
            continue
        else:
            continue
        event += 1
        if ms < start:
            continue
        if at_start is None:
            at_start, start_event = live, event
        if ms <= end:
            at_end = live
            if live > peak:
                peak, peak_ms, peak_event = live, ms, event
    return at_start, peak, peak_ms, start_event, peak_event, at_end


def second_pass(path, start_event, peak_event):
    """Per allocation kind: live count at the start event and at the peak event; the tables."""
    strings = [""]
    ips = [None]
    traces = [(0, 0)]
    sizes, kind_trace = [], []
    counts = []
    base = None
    event = 0
    for line in lines(path):
        kind = line[0]
        if kind == "+" or kind == "-":
            k = int(line[2:], 16)
            counts[k] += 1 if kind == "+" else -1
            event += 1
            if event == start_event:
                base = list(counts)
            if event == peak_event:
                break
        elif kind == "a":
            _, size, trace = line.split()
            sizes.append(int(size, 16))
            kind_trace.append(int(trace, 16))
            counts.append(0)
        elif kind == "s":
            _, _, text = line.rstrip("\n").partition(" ")
            strings.append(text.partition(" ")[2])
        elif kind == "i":
            ips.append([int(x, 16) for x in line.split()[2:]])
        elif kind == "t":
            _, ip, parent = line.split()
            traces.append((int(ip, 16), int(parent, 16)))
    base = base or []
    # Kinds first seen after the start were not live then.
    base += [0] * (len(counts) - len(base))
    return strings, ips, traces, sizes, kind_trace, counts, base


# Files of the standard library and of the collections: they say how memory was taken, not who
# took it.
PLUMBING = re.compile(r"^/rustc/|/hashbrown-[^/]*/|^$")
CRATE = re.compile(r".*/index\.crates\.io-[^/]*/")


def frames(strings, ips, traces, trace):
    """The frames of a trace, innermost first, each `function (file)`; std frames left out."""
    out = []
    while trace:
        ip, trace = traces[trace]
        info = ips[ip]
        # module, then (function, file, line) triples: the innermost inlined frame first.
        for i in range(1, len(info) - 2, 3):
            func, file = strings[info[i]], strings[info[i + 1]]
            if not PLUMBING.search(file):
                out.append(f"{func} ({CRATE.sub('', file)})")
    return out


def main():
    path, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    at_start, peak, peak_ms, start_event, peak_event, at_end = first_pass(path, start, end)
    if at_start is None:
        sys.exit(f"{path}: nothing recorded after {start} ms")
    print(f"live heap at {start} ms: {at_start / 2**20:.1f} MiB; peak in {start}-{end} ms: "
          f"{peak / 2**20:.1f} MiB at {peak_ms} ms (+{(peak - at_start) / 2**20:.1f} MiB); "
          f"at {end} ms: {at_end / 2**20:.1f} MiB")
    strings, ips, traces, sizes, kind_trace, counts, base = second_pass(path, start_event, peak_event)
    by_stack = {}
    for k, (now, then) in enumerate(zip(counts, base)):
        if now != then:
            stack = frames(strings, ips, traces, kind_trace[k])
            key = " < ".join(stack[:4]) or "(no frame outside the allocator)"
            by_stack[key] = by_stack.get(key, 0) + (now - then) * sizes[k]
    print(f"what the difference is made of (top {top}; MiB, live at the peak minus live at {start} ms):")
    for key, b in sorted(by_stack.items(), key=lambda kv: -abs(kv[1]))[:top]:
        print(f"  {b / 2**20:+8.2f}  {key}")
    print(f"  {sum(by_stack.values()) / 2**20:+8.2f}  in all")


if __name__ == "__main__":
    main()
