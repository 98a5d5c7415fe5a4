#!/usr/bin/env bash
# Experiment (issue 14): is NSD 4.6's "soa serial N update failed, restarting transfer" ours or
# NSD's? NSD follows Knot (not a satellite) by IXFR with TSIG while Knot takes RATE changes a
# second for SECONDS seconds (DNS UPDATEs by nsupdate: a domain added, one re-delegated, one
# removed, in turn; each a serial), and, with NOTIFY_HZ set, NSD is also NOTIFYed that often
# (signed, from 127.0.0.1), as a satellite does (each serial it publishes, every 200 ms at
# most) where Knot sends a few a second at most.
#   bench/nsd-follows-knot.sh [RATE] [SECONDS]      (default 30, 30)
# Environment: NOTIFY_HZ (unset: Knot's own NOTIFYs only), NSD_SERVER (lines added to NSD's
# `server:` clause, e.g. "    xfrd-reload-timeout: 0").
# Prints NSD's restarts, Knot's IXFR and AXFR out, and whether both zones end equal. Needs
# knotd, nsd, kdig, nsupdate and dig (apt-get install knot nsd knot-dnsutils bind9-dnsutils).
# Results: deploy/runbooks/xfr.md, section 3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RATE="${1:-30}"
SECONDS_="${2:-30}"
in_loopback_namespace "$0" "$@"
bench_start
machine
mkdir -p "$work/knot" "$work/nsd"
pk=$(free_port)
pn=$(free_port)
secret=c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==
{
    echo '$ORIGIN tld.'
    echo '@ 3600 IN SOA a.nic.tld. hostmaster.nic.tld. 2026 1800 900 604800 600'
    echo '@ 172800 IN NS a.nic.tld.'
    echo '@ 172800 IN NS b.nic.tld.'
    echo 'a.nic 3600 IN A 192.0.2.1'
    echo 'b.nic 3600 IN A 192.0.2.2'
    echo 'ns1.foo 3600 IN A 192.0.2.11'
    echo 'ns2.foo 3600 IN A 192.0.2.12'
    for i in $(seq 0 199); do
        echo "d$i 3600 IN NS ns1.foo.tld."
        echo "d$i 3600 IN NS ns2.foo.tld."
    done
} >"$work/knot/tld.zone"
# journal-max-depth: Knot's default (20 serials) would answer NSD AXFR-style at this rate.
cat >"$work/knot/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$pk
    rundir: $work/knot
log:
  - target: $work/knot/knot.log
    any: info
database:
    storage: $work/knot
key:
  - id: k1
    algorithm: hmac-sha256
    secret: $secret
remote:
  - id: nsd
    address: 127.0.0.1@$pn
    key: k1
acl:
  - id: update
    address: 127.0.0.1
    action: update
  - id: transfer
    address: 127.0.0.1
    key: k1
    action: transfer
zone:
  - domain: tld
    storage: $work/knot
    file: tld.zone
    notify: nsd
    acl: [update, transfer]
    zonefile-sync: -1
    journal-content: changes
    journal-max-depth: 100000
    serial-policy: increment
KNOT
# NSD as tests/secondaries.rs configures it, without its xfrd-reload-timeout.
cat >"$work/nsd/nsd.conf" <<NSD
server:
    ip-address: 127.0.0.1@$pn
    port: $pn
    username: ""
    chroot: ""
    zonesdir: "$work/nsd"
    database: ""
    pidfile: "$work/nsd/nsd.pid"
    xfrdfile: "$work/nsd/xfrd.state"
    xfrdir: "$work/nsd"
    zonelistfile: "$work/nsd/zone.list"
    logfile: "$work/nsd/nsd.log"
    verbosity: 2
    server-count: 1
${NSD_SERVER:-}
remote-control:
    control-enable: no
key:
    name: "k1"
    algorithm: hmac-sha256
    secret: "$secret"
zone:
    name: "tld"
    zonefile: "tld.zone"
    allow-notify: 127.0.0.1 k1
    request-xfr: 127.0.0.1@$pk k1
    provide-xfr: 127.0.0.1 NOKEY
NSD
serial() { kdig @127.0.0.1 -p "$1" +time=1 +retry=0 tld SOA +short 2>/dev/null | awk '{ print $3 }'; }
knotd -c "$work/knot/knot.conf" >/dev/null 2>&1 &
pids+=($!)
wait_log "$work/knot/knot.log" "server started" 10 "${pids[-1]}"
nsd -d -c "$work/nsd/nsd.conf" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ "$(serial "$pn")" = 2026 ] && break; sleep 0.2; done
[ "$(serial "$pn")" = 2026 ] || { echo "NSD never got the zone"; cat "$work/nsd/nsd.log"; exit 1; }
if [ -n "${NOTIFY_HZ:-}" ]; then
    pause=$(awk -v hz="$NOTIFY_HZ" 'BEGIN { print 1 / hz }')
    (while :; do
        dig @127.0.0.1 -p "$pn" -y "hmac-sha256:k1:$secret" +opcode=notify +norecurse +time=1 \
            +tries=1 tld SOA >/dev/null 2>&1 || true
        sleep "$pause"
    done) &
    pids+=($!)
fi
python3 - "$RATE" "$SECONDS_" "$pk" <<'PY' | nsupdate >"$work/nsupdate.log" 2>&1
import sys, time
rate, secs, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print(f"server 127.0.0.1 {port}\nzone tld.")
start, i = time.monotonic(), 0
while time.monotonic() - start < secs:
    if i % 3 == 0:
        print(f"update add s{i}.tld. 3600 NS ns1.foo.tld.")
    elif i % 3 == 1:
        print(f"update delete d{i % 200}.tld. NS\nupdate add d{i % 200}.tld. 3600 NS ns.example.net.")
    else:
        print(f"update delete s{i - 2}.tld. NS")
    print("send", flush=True)
    i += 1
    time.sleep(max(0.0, start + i / rate - time.monotonic()))
print("quit")
PY
[ -n "${NOTIFY_HZ:-}" ] && kill "${pids[-1]}"
want=$(serial "$pk")
for _ in $(seq 300); do [ "$(serial "$pn")" = "$want" ] && break; sleep 0.2; done
zone() { kdig @127.0.0.1 -p "$1" "${@:2}" tld AXFR +nocomments | grep -v -e '^;' -e TSIG | sort; }
if [ "$(zone "$pk" -y "hmac-sha256:k1:$secret")" = "$(zone "$pn")" ]; then same=equal; else same=DIFFERENT; fi
echo "rate $RATE/s for ${SECONDS_}s, NOTIFY_HZ ${NOTIFY_HZ:-none}, NSD server: ${NSD_SERVER:-defaults}"
echo "Knot serial $want, NSD serial $(serial "$pn"), zones $same"
echo "NSD: $(grep -c 'restarting transfer' "$work/nsd/nsd.log" || true) restarts," \
    "$(grep -c 'notify for tld' "$work/nsd/nsd.log" || true) NOTIFYs"
echo "Knot: $(grep -c 'IXFR, outgoing.*finished' "$work/knot/knot.log" || true) IXFR out," \
    "$(grep -c 'AXFR, outgoing.*finished' "$work/knot/knot.log" || true) AXFR out (the first, and this script's)"
