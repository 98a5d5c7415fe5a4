#!/usr/bin/env bash
# Benchmark (issue 13): a DS committed in the store → a validated answer through Unbound on
# every satellite, at 100 changes/s.
#   bench/ds-validated.sh [DOMAINS [SECONDS]]       (default 10000 60)
# In a fresh PostgreSQL database: a synthetic zone `flt.` of DOMAINS delegations (seed 1, 8 %
# with a DS), signed by its policy (NSEC3 opt-out, algorithm 13, a KSK and a ZSK whose private
# keys are in the run's key directory, as in deploy/runbooks/dnssec.md); a master process
# signing the change path, two satellite processes following it, and one Unbound per
# satellite (a stub zone `flt.` pointing at that satellite, the zone's DS as trust anchor).
# Then for SECONDS, BENCH_RATE (100) changes a second, one transaction each from BENCH_SESSIONS
# (4) psql sessions paced on the server's clock (the approach of bench/xfr.sh's `follow` part): each
# gives an existing delegation a DS (about three in four: one without a DS gets one) or
# replaces the one DS it has (the rest), with a digest new to the run; the commit's time and
# its journal serial (the zone's SOA serial that carries it) are recorded per change.
# bench/peers.py ds-validated asks each Unbound for each changed name's DS until it answers
# NOERROR with AD set and the new digest, counting every SERVFAIL on the way, and polls each
# satellite's SOA serial every 5 ms; it prints per satellite count, p50, p90, p99 and max of
# commit → validated and of commit → the satellite's serial (the master's signing and the
# link: what is left is the resolver's share). Each change is asked of a resolver every 2 s
# until the satellite's serial carries it, then at once and every 5 ms until it validates.
#
# Unbound runs with `cache-max-ttl: 0` and `cache-max-negative-ttl: 0`: a name is asked again
# and again while its change propagates, and a cached old answer (the NODATA for a name without
# DS, 3600 s; the old DS, 86400 s) would hide the new one for its TTL. Fresh names alone would
# not do: only the first question about a name would reach the satellite. Without a cache every
# answer is Unbound's own validation of what the satellite serves at that moment, the DNSKEY
# RRset re-fetched and re-validated each time (the validator's worst case); what a deployed
# resolver adds on top, holding the old DS up to its TTL, is DNS by design, not the cluster's.
#
# Environment (all optional): BENCH_RATE=100  BENCH_SESSIONS=4  BENCH_BIN=DIR (default: the
#   release build)
# Every wait is bounded; processes are stopped and the database dropped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-10000}"
SECS="${2:-60}"
RATE="${BENCH_RATE:-100}"
ZONE=flt
build orrery-store orrery-satellite orrery-master
in_loopback_namespace "$0" "$@"
bench_start
peers="python3 $PWD/bench/peers.py"
hz=$(getconf CLK_TCK)
link_port=7463 sat_ports=(5331 5332) resolver_ports=(5341 5342)

echo "$(machine); busiest processes now: $(busy)"
echo "binaries: $bin; $N delegations, $RATE changes/s for $SECS s; $(unbound -V | head -1)"

fresh_db "orrery_dsbench_$$" || true
t=$(now)
quiet "$bin/orrery-admin" --db "$url" load-synthetic --zone "$ZONE" --domains "$N" --seed 1
echo "store: loaded in $(since "$t") s"
quiet "$bin/orrery-admin" --db "$url" dnssec policy "$ZONE" --denial nsec3-optout --algorithm 13
quiet "$bin/orrery-admin" --db "$url" dnssec add-key "$ZONE" --role ksk --key-dir "$work/keys"
quiet "$bin/orrery-admin" --db "$url" dnssec add-key "$ZONE" --role zsk --key-dir "$work/keys"
anchor=$("$bin/orrery-admin" --db "$url" dnssec ds "$ZONE" | sed -n 's/^record: //p')
[ -n "$anchor" ] || { echo "no DS for the trust anchor"; exit 1; }
echo "trust anchor: $anchor"

test_certs "$work/certs" m1 sat1 sat2
cat >"$work/master.toml" <<TOML
[master]
store = "$url"
listen = ["127.0.0.1:$link_port"]
[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"
[dnssec]
key_dir = "$work/keys"
[satellite_defaults]
workers = 1
selector = "std"
[selectors.std]
chains = [{ name = "main", leaves = ["lookup"] }]
[selectors.std.leaves.lookup]
kind = "lookup"
[satellites.sat1]
dns = { udp = ["127.0.0.1:${sat_ports[0]}"], tcp = ["127.0.0.1:${sat_ports[0]}"] }
[satellites.sat2]
dns = { udp = ["127.0.0.1:${sat_ports[1]}"], tcp = ["127.0.0.1:${sat_ports[1]}"] }
TOML
t=$(now)
NO_COLOR=1 "$bin/orrery-master" run --config "$work/master.toml" >"$work/master.log" 2>&1 &
mpid=$!; pids+=("$mpid")
wait_log "$work/master.log" "snapshot for booting satellites built" 600 "$mpid"
echo "master: signed and ready in $(since "$t") s"
spids=()
for i in 1 2; do
    NO_COLOR=1 "$bin/orrery-satellite" --master "127.0.0.1:$link_port" --tls-dir "$work/certs" \
        --name "sat$i" --state "$work/sat$i.state" >"$work/sat$i.log" 2>&1 &
    spids+=("$!"); pids+=("$!")
done
t=$(now)
for i in 1 2; do wait_log "$work/sat$i.log" "snapshot applied and saved" 600 "${spids[$((i - 1))]}"; done
echo "satellites: both serving in $(since "$t") s"

# One Unbound per satellite (the configuration of tests/cluster/unbound.rs, caching nothing).
upids=()
for i in 1 2; do
    d="$work/unbound$i"
    mkdir -p "$d"
    echo "$anchor" >"$d/anchors"
    cat >"$d/unbound.conf" <<CONF
server:
    interface: 127.0.0.1
    port: ${resolver_ports[$((i - 1))]}
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: "$d/unbound.log"
    verbosity: 1
    val-log-level: 2
    chroot: ""
    username: ""
    directory: "$d"
    pidfile: ""
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-signaling: no
    root-key-sentinel: no
    harden-referral-path: no
    qname-minimisation: no
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    trust-anchor-file: "$d/anchors"
remote-control:
    control-enable: no
stub-zone:
    name: "$ZONE."
    stub-addr: 127.0.0.1@${sat_ports[$((i - 1))]}
CONF
    unbound -d -c "$d/unbound.conf" >"$d/stderr" 2>&1 &
    upids+=("$!"); pids+=("$!")
done
for i in 1 2; do
    port=${resolver_ports[$((i - 1))]}
    end=$((SECONDS + 60))
    until dig +time=1 +tries=1 +dnssec @127.0.0.1 -p "$port" "$ZONE" SOA 2>/dev/null | grep -q 'flags:.* ad'; do
        [ "$SECONDS" -lt "$end" ] || { echo "unbound $i does not validate the apex"; tail "$work/unbound$i/unbound.log" "$work/unbound$i/stderr"; exit 1; }
        sleep 0.2
    done
done
echo "both resolvers validate the apex SOA (AD)"

# The changes: distinct delegations in the zone (NS, status 'ok' only), one in four taken from
# those with exactly one DS (its DS replaced) while they last, the rest from those without a
# DS (a DS added); in a random order fixed by the seed.
n=$((RATE * SECS))
t=$(now)
zone_id=$(sql "SELECT id FROM zone WHERE name = '$ZONE'")
pick() {
    # Aggregated once per table, then joined: the same condition as a subquery per domain,
    # which took about 11 minutes at 100,000 domains.
    sql "SELECT setseed(0.13);
         WITH st AS (SELECT domain_id FROM domain_status GROUP BY domain_id
                     HAVING array_agg(status) = ARRAY['ok']),
              dsn AS (SELECT domain_id, count(*) AS c FROM ds GROUP BY domain_id),
              nsd AS (SELECT DISTINCT domain_id FROM domain_ns)
         SELECT d.id, d.name FROM domain d
         JOIN st ON st.domain_id = d.id
         JOIN nsd ON nsd.domain_id = d.id
         LEFT JOIN dsn ON dsn.domain_id = d.id
         WHERE d.zone_id = $zone_id AND coalesce(dsn.c, 0) = $1
         ORDER BY random() LIMIT $2" | grep -v '^$' | tr '|' ' '
}
pick 1 $((n / 4)) | sed 's/^/change /' >"$work/changing"
pick 0 $((n - $(wc -l <"$work/changing"))) | sed 's/^/add /' >"$work/adding"
cat "$work/changing" "$work/adding" | python3 -c '
import hashlib, random, sys
rows = [l.split() for l in sys.stdin]
random.Random(13).shuffle(rows)
for k, (kind, did, name) in enumerate(rows):
    digest = hashlib.sha256(f"dsbench {sys.argv[1]} {k}".encode()).hexdigest().upper()
    print(k, kind, did, name, 1 + k % 65535, digest)' "$$" >"$work/changes"
[ "$(wc -l <"$work/changes")" = "$n" ] || { echo "fewer than $n delegations to change"; exit 1; }
awk '{ print $1, $4 ".", $6 }' "$work/changes" >"$work/plan"
signed_before=$(sql "SELECT count(DISTINCT ds.domain_id) FROM ds JOIN domain d ON d.id = ds.domain_id WHERE d.zone_id = $zone_id")
echo "changes: $n ($(wc -l <"$work/adding") DS added, $(wc -l <"$work/changing") DS replaced), picked in $(since "$t") s; delegations with DS before: $signed_before"

rm -f "$work/stop"
specs=()
for i in 1 2; do specs+=("sat$i:${sat_ports[$((i - 1))]}:${resolver_ports[$((i - 1))]}"); done
$peers ds-validated "$work/plan" "$work/events" "$work/stop" "$ZONE" "${specs[@]}" $(seq -f "$work/commits.%g" 0 $((${BENCH_SESSIONS:-4} - 1))) >"$work/report" &
poller=$!; pids+=("$poller")
sleep 1

echo "writing from $(date -u '+%T') UTC; load average $(cut -d' ' -f1-3 /proc/loadavg)"
c0=$(now); m0=$($peers cpu "$mpid")
s0=(); for p in "${spids[@]}" "${upids[@]}"; do s0+=("$($peers cpu "$p")"); done
# BENCH_SESSIONS psql sessions (4: two reached 88/s at load average 13-15, each change being
# five round trips), each change one transaction; after COMMIT the time (PostgreSQL's clock,
# the same machine's) and the serial the journal gave this transaction's rows (looked up by
# its transaction id among the serials after the journal's head at the start: without that
# bound the planner scanned the whole journal for every commit, 200k rows at 100k domains). Slot k of the run is
# t0 + k / rate, dealt round-robin; each session sleeps to its next slot.
head0=$(sql "SELECT coalesce(max(serial), 0) FROM journal")
sessions="${BENCH_SESSIONS:-4}" t0=$(now) writers=()
for s in $(seq 0 $((sessions - 1))); do
    awk -v r="$RATE" -v t0="$t0" -v s="$sessions" -v me="$s" -v z="$zone_id" -v h="$head0" '
    BEGIN { printf "SELECT pg_sleep(%.6f);\n", me / r }
    $1 % s == me {
        print "BEGIN;"
        if ($2 == "add")
            printf "INSERT INTO ds (domain_id, key_tag, algorithm, digest_type, digest) VALUES (%s, %s, 13, 2, '\''%s'\'');\n", $3, $5, $6
        else
            printf "UPDATE ds SET key_tag = %s, digest = '\''%s'\'' WHERE domain_id = %s;\n", $5, $6, $3
        print "SELECT pg_current_xact_id() AS x \\gset"
        print "COMMIT;"
        printf "SELECT %s, extract(epoch FROM clock_timestamp()), (SELECT serial FROM journal WHERE zone_id = %s AND serial > %s AND xid = :'\''x'\''::xid8 ORDER BY serial DESC LIMIT 1);\n", $1, z, h
        printf "SELECT pg_sleep(greatest(0, %.6f - extract(epoch FROM clock_timestamp())));\n", t0 + ($1 + s) / r
    }' "$work/changes" | psql -qAt -F ' ' -v ON_ERROR_STOP=1 -h "$PGHOST" -U postgres -d "$db" >"$work/commits.$s" &
    writers+=($!); pids+=($!)
done
for w in "${writers[@]}"; do wait "$w" || echo "a psql session failed"; done
elapsed=$(since "$c0")
echo "writing done in $elapsed s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The last changes propagate; the poller ends when every change validated on both, or here.
end=$((SECONDS + 60))
while kill -0 "$poller" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
touch "$work/stop"; wait "$poller" || true
cpu_ms() { echo $(( ($($peers cpu "$1") - $2) * 1000 / hz )); }
cpus="master $(cpu_ms "$mpid" "$m0") ms"
i=0; for p in "${spids[@]}" "${upids[@]}"; do
    label=$([ "$i" -lt 2 ] && echo "sat$((i + 1))" || echo "unbound$((i - 1))")
    cpus="$cpus, $label $(cpu_ms "$p" "${s0[$i]}") ms"; i=$((i + 1))
done
committed=$(cat "$work"/commits.* | awk 'NF == 3' | wc -l)
signed_after=$(sql "SELECT count(DISTINCT ds.domain_id) FROM ds JOIN domain d ON d.id = ds.domain_id WHERE d.zone_id = $zone_id")

echo
echo "## commit → validated DS through Unbound, $N delegations ($signed_before → $signed_after with DS), $committed changes at $RATE/s planned, $(awk -v c="$committed" -v e="$elapsed" 'BEGIN { printf "%.1f", c / e }')/s done ($elapsed s); $(date -u '+%F %T') UTC"
cat "$work/report"
echo "  CPU over the run: $cpus"
echo "  $(machine); busiest processes at the end: $(busy)"
