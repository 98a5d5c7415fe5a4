# Shared by the benchmark scripts: `source "$(dirname "$0")/lib.sh"` after `set -euo pipefail`,
# then (after `build` and `in_loopback_namespace`, which need the network and exec) `bench_start`.
# It gives every script the same start (the binaries, a temporary directory, processes and a
# database cleaned up on exit) and the same small tools, so that a fix to one of them (a wait
# that was not bounded, a process left running) reaches every benchmark.
#
# Environment every script shares:
#   BENCH_BIN=DIR   take the binaries from DIR instead of building them in release mode (a
#                   dry run with the debug build: BENCH_BIN=target/debug)
#   PGHOST          PostgreSQL's socket directory (default /var/run/postgresql)

cd "$(dirname "$0")/.."
PGHOST="${PGHOST:-/var/run/postgresql}"
# Processes to stop on exit, and how (BENCH_KILL=-9 to kill them outright).
pids=()
# A database to drop on exit (set by `fresh_db`).
drop_db=""
# Extra clean-up a script registers (a function name), run first.
on_exit=""

_bench_cleanup() {
    [ -z "$on_exit" ] || "$on_exit" || true
    for p in "${pids[@]}"; do kill ${BENCH_KILL:-} "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -z "$drop_db" ] || psql -q -h "$PGHOST" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $drop_db WITH (FORCE)" 2>/dev/null || true
    [ -z "${work:-}" ] || rm -rf "$work"
}

# bench_start: the temporary directory $work, and the clean-up on exit.
bench_start() {
    work="$(mktemp -d)"
    trap _bench_cleanup EXIT
}

# build PACKAGE...: the release binaries of these packages, unless BENCH_BIN names a directory;
# sets $bin.
build() {
    if [ -z "${BENCH_BIN:-}" ]; then
        local args=()
        for p in "$@"; do args+=(-p "$p"); done
        cargo build --release --locked "${args[@]}" >/dev/null
    fi
    bin="$(realpath "${BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}")"
}

# fresh_db NAME: a PostgreSQL database for this run, created now and dropped on exit, unless
# BENCH_DB names one to reuse (kept). Sets $db and $url; returns 1 when the database was reused
# (so the caller skips loading it).
fresh_db() {
    db="${BENCH_DB:-$1}"
    url="postgres:///$db?host=$PGHOST&user=postgres"
    [ -z "${BENCH_DB:-}" ] || return 1
    psql -q -h "$PGHOST" -U postgres -d postgres -c "CREATE DATABASE $db"
    drop_db="$db"
}

# Wall-clock seconds: now, and since an earlier `now` (two decimals).
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# rss PID FIELD: a /proc/PID/status field (VmRSS, VmHWM) in MiB.
rss() { awk -v f="$2" '$1 == f":" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# A free TCP port on 127.0.0.1 (the kernel's choice; free when asked, so use it at once).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# quiet CMD...: runs it with its output kept aside, shown (and the script stopped) if it fails.
quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }; }
# The five busiest processes with their CPU share, for the record of what else ran.
busy() { ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{ printf "%s %s%%; ", $2, $1 }'; }
# One line on the machine: cores, load, time.
machine() { echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T') UTC"; }

# wait_log FILE TEXT SECONDS PID: until TEXT appears in FILE; stops the script when PID exits
# first or SECONDS pass.
wait_log() {
    local end=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        kill -0 "$4" 2>/dev/null || { echo "process $4 exited:"; tail -20 "$1"; exit 1; }
        [ "$SECONDS" -lt "$end" ] || { echo "no '$2' in $1 within $3 s"; tail -20 "$1"; exit 1; }
        sleep 0.05
    done
}

# referral NAME PORT [TIMEOUT]: succeeds when 127.0.0.1:PORT answers NAME NS over UDP, without
# recursion, with NOERROR and NS records in the answer or authority section (a referral). No
# dig needed, and nothing but loopback is asked.
referral() {
    python3 - "$1" "$2" "${3:-1}" <<'PY'
import socket, struct, sys
name, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
q = struct.pack(">HHHHHH", 0x4f52, 0, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
q += struct.pack(">HH", 2, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
try:
    s.sendto(q, ("127.0.0.1", port))
    r = s.recv(65535)
except OSError:
    sys.exit(1)
_, flags, _, an, ns, _ = struct.unpack(">HHHHHH", r[:12])
sys.exit(0 if flags & 0xF == 0 and an + ns > 0 else 1)
PY
}

# test_certs DIR MASTER SATELLITE...: a CA, a master certificate and satellite certificates.
test_certs() {
    local dir=$1 master=$2; shift 2
    "$bin/orrery-master" certs ca --dir "$dir" >/dev/null
    "$bin/orrery-master" certs issue --dir "$dir" --master "$master" >/dev/null
    for s in "$@"; do "$bin/orrery-master" certs issue --dir "$dir" --satellite "$s" >/dev/null; done
}

# in_loopback_namespace "$0" "$@": re-runs the script in a network namespace of its own with
# only loopback up (call before anything else; it returns only inside the namespace).
in_loopback_namespace() {
    if [ -z "${ORRERY_BENCH_NETNS:-}" ]; then
        exec unshare --net -- env ORRERY_BENCH_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$@"
    fi
}

# master_config FILE LINK_PORT SATELLITE DNS_PORT: a master on $url with its link on LINK_PORT
# and one satellite serving DNS only on DNS_PORT (UDP and TCP, 1 worker, a `lookup` chain),
# certificates in certs/ beside FILE (made by test_certs with master m1).
master_config() {
    cat >"$1" <<TOML
[master]
store = "$url"
listen = ["127.0.0.1:$2"]
[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"
[satellite_defaults]
workers = 1
selector = "std"
[selectors.std]
chains = [{ name = "main", leaves = ["lookup"] }]
[selectors.std.leaves.lookup]
kind = "lookup"
[satellites.$3]
dns = { udp = ["127.0.0.1:$4"], tcp = ["127.0.0.1:$4"] }
TOML
}

# peer_configs [xfr]: the two servers every comparison with Knot runs, on $knot_port and $sat_port:
# $work/knot/knot.conf (Knot serving $work/zones/test.zone, 2 UDP workers, no journal, a control
# socket) and $work/sat.toml (deploy/satellite.example.toml on $sat_port with 2 UDP workers).
# With `xfr`, both send AXFR/IXFR of the zone to 127.0.0.1 unsigned (the satellite without its
# per-client transfer rate limit, so that a loop of transfers is not refused).
peer_configs() {
    local knot_acl="" zone_acl="" sat_xfr=""
    if [ "${1:-}" = xfr ]; then
        knot_acl='acl:
  - id: local_xfr
    address: 127.0.0.1
    action: transfer'
        zone_acl='    acl: [local_xfr]'
        sat_xfr='
[xfr]
acl = [{ prefixes = ["127.0.0.1/32"] }]
transfers_per_minute = 1000000
max_transfers_per_address = 16'
    fi
    mkdir -p "$work/knot"
    cat >"$work/knot/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$knot_port
    rundir: "$work/knot"
    udp-workers: 2
    tcp-workers: 2
control:
    listen: "$work/knot/knot.sock"
database:
    storage: "$work/knot/db"
$knot_acl
template:
  - id: default
    storage: "$work/zones"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: test
    file: test.zone
$zone_acl
log:
  - target: stderr
    any: warning
KNOT
    sed -e "s/127.0.0.1:5353/127.0.0.1:$sat_port/g" -e "s/^workers = .*/workers = 2/" \
        deploy/satellite.example.toml >"$work/sat.toml"
    echo "$sat_xfr" >>"$work/sat.toml"
}

# nsd_config [xfr]: $work/nsd/nsd.conf, NSD 4 serving $work/zones/test.zone on $nsd_port
# (`server-count: 2`, `reuseport: yes`, no database file, no remote control, no notify, no RRL);
# with `xfr` it sends AXFR of the zone to 127.0.0.1 unsigned.
nsd_config() {
    local provide=""
    [ "${1:-}" != xfr ] || provide='    provide-xfr: 127.0.0.1 NOKEY'
    mkdir -p "$work/nsd"
    cat >"$work/nsd/nsd.conf" <<NSD
server:
    ip-address: 127.0.0.1@$nsd_port
    server-count: 2
    reuseport: yes
    database: ""
    zonesdir: "$work/zones"
    zonelistfile: "$work/nsd/zone.list"
    xfrdfile: "$work/nsd/xfrd.state"
    xfrdir: "$work/nsd"
    pidfile: "$work/nsd/nsd.pid"
    logfile: "$work/nsd/nsd.log"
    username: ""
    chroot: ""
    zonefiles-write: 0
    # Packages build NSD with response rate limiting on (200/s per source and kind of answer),
    # which would cap the NXDOMAIN runs from one loopback source; the other servers run unlimited.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    verbosity: 0
remote-control:
    control-enable: no
zone:
    name: test
    zonefile: test.zone
$provide
NSD
}

# sql STATEMENTS: runs them on the store $url (PostgreSQL database $db, or SQLite when $db is
# empty and $url is sqlite:PATH); rows unaligned, one a line.
sql() {
    if [ -z "$db" ]; then sqlite3 "${url#sqlite:}" "$1"; else psql -qAt -h "$PGHOST" -U postgres -d "$db" -c "$1"; fi
}

# ok_delegations N: the ids of N delegated domains whose only status is 'ok', the highest ids
# first, comma-separated (the batches of compare-peers.sh and batch-heap.sh: their status set
# to 'serverHold' and back in one transaction each).
ok_delegations() {
    local ids
    ids=$(sql "SELECT d.id FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
        AND (SELECT array_agg(status) FROM domain_status s WHERE s.domain_id = d.id) = ARRAY['ok']
        ORDER BY d.id DESC LIMIT $1" 2>/dev/null | paste -sd, -) || ids=""
    if [ -z "$ids" ]; then # SQLite has no arrays
        ids=$(sql "SELECT d.id FROM domain d WHERE EXISTS (SELECT 1 FROM domain_ns n WHERE n.domain_id = d.id)
            AND (SELECT group_concat(status) FROM domain_status s WHERE s.domain_id = d.id) = 'ok'
            ORDER BY d.id DESC LIMIT $1" | paste -sd, -)
    fi
    echo "$ids"
}
