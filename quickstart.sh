#!/usr/bin/env bash
# Orrery quickstart: a whole local cluster on the embedded default (SQLite), all under ./run/.
#
#   1. builds the release binaries (orrery-admin, orrery-generator, orrery-master, orrery-satellite);
#   2. creates a fresh SQLite store with a synthetic TLD `test.` ($DOMAINS domains) and hello.test;
#   3. generates the BIND fallback zone files and named.conf fragment (run/zones);
#   4. makes a private CA and the master's and satellite's certificates (run/certs);
#   5. writes a master configuration (run/master.toml) for one satellite, sat1, serving DNS on
#      UDP and TCP 127.0.0.1:$PORT, Whois on 127.0.0.1:$WHOIS_PORT and RDAP on
#      http://127.0.0.1:$RDAP_PORT/, and starts the master (link on 127.0.0.1:$MASTER_PORT) and
#      the satellite in the background (run/*.pid, run/*.log);
#   6. waits until the satellite answers, prints what to try, and exits.
#
# Environment: PORT (DNS, default 5353), WHOIS_PORT (default 4343), RDAP_PORT (default 8080),
# MASTER_PORT (link, default 7443), DOMAINS (default 10000), DEADLINE (seconds each component
# has to come up, default 60).
# Stop the cluster with: kill $(cat run/*.pid)
set -euo pipefail
cd "$(dirname "$0")"
DOMAINS="${DOMAINS:-10000}"
PORT="${PORT:-5353}"
WHOIS_PORT="${WHOIS_PORT:-4343}"
RDAP_PORT="${RDAP_PORT:-8080}"
MASTER_PORT="${MASTER_PORT:-7443}"
DEADLINE="${DEADLINE:-60}"
bin=target/release

cargo build --release --locked -p orrery-store -p orrery-generator -p orrery-master -p orrery-satellite

# Stop what a previous run left behind (it would hold the ports), but only our own processes:
# a stale pid file may name a pid that now belongs to something else.
stop_pid_file() {
    local file=$1 pid
    pid=$(cat "$file" 2>/dev/null) || return 0
    rm -f "$file"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if ps -p "$pid" -o comm= 2>/dev/null | grep -q '^orrery-'; then
        echo "== stopping $(ps -p "$pid" -o comm=) (pid $pid) from a previous run"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        echo "pid $pid did not stop within 5 s; killing it" >&2
        kill -9 "$pid" 2>/dev/null || true
    fi
}
for f in run/*.pid; do
    [ -e "$f" ] && stop_pid_file "$f"
done
rm -rf run && mkdir -p run
db="sqlite:run/orrery.db"

echo "== loading a synthetic TLD 'test.' with $DOMAINS domains into $db"
"$bin/orrery-admin" --db "$db" load-synthetic --zone test --domains "$DOMAINS" --seed 1

echo "== a registrar, a contact and a domain, as a registration system would write them"
"$bin/orrery-admin" --db "$db" registrar add DEMO --name "Demo Registrar" --email demo@registrar.example
"$bin/orrery-admin" --db "$db" contact add DEMO-1 --name "Ada Lovelace" --city London --country GB --email ada@mail.example
"$bin/orrery-admin" --db "$db" domain add hello.test --registrar DEMO --registrant DEMO-1 \
    --ns ns1.hello.test=198.18.250.1,2001:db8::250:1 --ns ns.hoster.example \
    --ds "60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"

echo "== generating the BIND fallback zone files into run/zones"
"$bin/orrery-generator" --db "$db" --out run/zones
ls -l run/zones
if command -v named-checkzone >/dev/null 2>&1 || [ -x /usr/sbin/named-checkzone ]; then
    PATH="$PATH:/usr/sbin" named-checkzone -i local test run/zones/test.zone
fi

echo "== a private CA and certificates for master m1 and satellite sat1 in run/certs"
"$bin/orrery-master" certs ca --dir run/certs --days 30
"$bin/orrery-master" certs issue --dir run/certs --master m1 --days 30
"$bin/orrery-master" certs issue --dir run/certs --satellite sat1 --days 30

echo "== master configuration run/master.toml"
# Certificate paths are relative to this file's folder; the store URL is not, so it is absolute.
cat > run/master.toml <<EOF
# Written by quickstart.sh; see deploy/master.example.toml for every field.
[master]
store = "sqlite:$PWD/run/orrery.db"
listen = ["127.0.0.1:$MASTER_PORT"]
# SQLite has no NOTIFY: poll the journal often so that a change is served within a second.
poll_interval_ms = 200

[tls]
ca = "certs/ca.pem"
cert = "certs/m1.master.pem"
key = "certs/m1.master.key"

[satellite_defaults]
checkin_interval_ms = 5000
workers = 2
selector = "standard"
rds_selector = "registration_data"

# Whois and RDAP: rate limit (a token bucket per client address and per prefix; first, so that
# malformed queries spend tokens too), validate, look up. See deploy/master.example.toml.
[selectors.registration_data]
chains = [{ name = "main", leaves = ["stats", "limit", "validate", "lookup"] }]
[selectors.registration_data.leaves.stats]
kind = "statistics"
[selectors.registration_data.leaves.validate]
kind = "validate_query"
[selectors.registration_data.leaves.limit]
kind = "rate_limit"
address_rate = 5.0
address_burst = 20
prefix_rate = 50.0
prefix_burst = 200
[selectors.registration_data.leaves.lookup]
kind = "lookup"

[selectors.standard]
chains = [
    { name = "main", leaves = ["stats", "validate", "acl", "to_chaos", "lookup"] },
    { name = "chaos", leaves = ["chaos"] },
]
[selectors.standard.leaves.stats]
kind = "statistics"
[selectors.standard.leaves.validate]
kind = "validate_query"
[selectors.standard.leaves.acl]
kind = "acl"
deny = []
action = "refuse"
[selectors.standard.leaves.to_chaos]
kind = "route_class"
class = "CH"
chain = "chaos"
[selectors.standard.leaves.chaos]
kind = "chaos"
version = "orrery-satellite"
hostname = "sat1.local"
id_server = "sat1"
[selectors.standard.leaves.lookup]
kind = "lookup"

[satellites.sat1]
dns = { udp = ["127.0.0.1:$PORT"], tcp = ["127.0.0.1:$PORT"] }
whois = { tcp = ["127.0.0.1:$WHOIS_PORT"] }
rdap = { http = ["127.0.0.1:$RDAP_PORT"], base_url = "http://127.0.0.1:$RDAP_PORT/" }
nsid = "sat1.local"
hostname = "sat1.local"
EOF
"$bin/orrery-master" check-config --config run/master.toml

# Fails the script: shows the log tails, stops what this run started.
started=()
fail() {
    echo >&2
    echo "quickstart: $1" >&2
    for log in run/master.log run/satellite.log; do
        [ -f "$log" ] || continue
        echo "---- last lines of $log" >&2
        tail -n 25 "$log" >&2
    done
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -f run/*.pid
    exit 1
}

# wait_for NAME PID SECONDS COMMAND…: until COMMAND succeeds; fails if PID exits or time runs out.
wait_for() {
    local name=$1 pid=$2 seconds=$3
    shift 3
    local end=$((SECONDS + seconds))
    until "$@"; do
        kill -0 "$pid" 2>/dev/null || fail "$name exited (a port taken? try PORT=5354 MASTER_PORT=7444 ./quickstart.sh)"
        [ "$SECONDS" -lt "$end" ] || fail "$name did not come up within ${seconds} s (see the logs below; a port taken? try PORT=5354 MASTER_PORT=7444 ./quickstart.sh)"
        sleep 0.2
    done
}

# NO_COLOR: plain log files. setsid: the processes outlive this script and its terminal.
echo "== starting orrery-master (link on 127.0.0.1:$MASTER_PORT; log run/master.log)"
NO_COLOR=1 setsid "$bin/orrery-master" run --config run/master.toml > run/master.log 2>&1 < /dev/null &
echo $! > run/master.pid
started+=("$!")
wait_for orrery-master "$(cat run/master.pid)" "$DEADLINE" grep -q 'link listening' run/master.log

echo "== starting orrery-satellite sat1 (DNS on 127.0.0.1:$PORT; log run/satellite.log)"
NO_COLOR=1 setsid "$bin/orrery-satellite" --master "127.0.0.1:$MASTER_PORT" --tls-dir run/certs \
    --name sat1 --state run/sat1.state > run/satellite.log 2>&1 < /dev/null &
echo $! > run/satellite.pid
started+=("$!")
wait_for orrery-satellite "$(cat run/satellite.pid)" "$DEADLINE" grep -q 'serving DNS' run/satellite.log
wait_for orrery-satellite "$(cat run/satellite.pid)" "$DEADLINE" grep -q 'serving Whois and RDAP' run/satellite.log

answers() {
    dig @127.0.0.1 -p "$PORT" +time=1 +tries=1 +norec hello.test NS 2>/dev/null |
        grep -q 'ns1\.hello\.test\.'
}
if command -v dig >/dev/null 2>&1; then
    wait_for "orrery-satellite (dig hello.test NS)" "$(cat run/satellite.pid)" "$DEADLINE" answers
    dig @127.0.0.1 -p "$PORT" +norec hello.test NS
else
    echo "(dig not found: the satellite's log says it serves DNS)"
    grep 'serving DNS' run/satellite.log
fi

if command -v whois >/dev/null 2>&1; then
    echo "== whois -h 127.0.0.1 -p $WHOIS_PORT hello.test"
    whois -h 127.0.0.1 -p "$WHOIS_PORT" hello.test | head -n 30
else
    echo "(whois not found: apt-get install whois)"
fi

admin="$bin/orrery-admin --db $db"
cat <<EOF

A local Orrery cluster runs in the background under ./run:
  store      $db (synthetic TLD test. with $DOMAINS domains, and hello.test)
  master     pid $(cat run/master.pid), link 127.0.0.1:$MASTER_PORT, config run/master.toml, log run/master.log
  satellite  pid $(cat run/satellite.pid), DNS 127.0.0.1:$PORT (UDP+TCP), Whois 127.0.0.1:$WHOIS_PORT,
             RDAP http://127.0.0.1:$RDAP_PORT/, state run/sat1.state, log run/satellite.log
  BIND       fallback zone files and named.conf fragment in run/zones

Ask the satellite:
  dig @127.0.0.1 -p $PORT hello.test NS        # referral: NS in AUTHORITY, glue in ADDITIONAL
  dig @127.0.0.1 -p $PORT test SOA             # authoritative (aa), serial = journal head
  dig @127.0.0.1 -p $PORT nope.test A          # NXDOMAIN with the SOA
  dig @127.0.0.1 -p $PORT hello.test DS        # DS from the parent side (aa)
  dig @127.0.0.1 -p $PORT +nsid version.bind TXT CH

Whois (port $WHOIS_PORT) and RDAP (http://127.0.0.1:$RDAP_PORT/):
  whois -h 127.0.0.1 -p $WHOIS_PORT hello.test                # ICANN layout, registrant redacted
  whois -h 127.0.0.1 -p $WHOIS_PORT "nameserver ns1.hello.test"
  whois -h 127.0.0.1 -p $WHOIS_PORT "registrar Demo Registrar"
  curl -s http://127.0.0.1:$RDAP_PORT/domain/hello.test       # RDAP JSON (RFC 9083)
  curl -s http://127.0.0.1:$RDAP_PORT/entity/DEMO

Change a domain in the store and see the satellite's answer change within a second:
  $admin domain update hello.test --add-status clientHold      # out of DNS
  dig @127.0.0.1 -p $PORT hello.test NS        # NXDOMAIN now; test SOA shows a higher serial
  whois -h 127.0.0.1 -p $WHOIS_PORT hello.test # Domain Status: clientHold
  $admin domain update hello.test --remove-status clientHold   # back in DNS
  $admin domain show hello.test
The BIND fallback files follow when the generator runs again:
  $bin/orrery-generator --db $db --out run/zones

Stop the cluster:  kill \$(cat run/*.pid)
(the satellite keeps serving from run/sat1.state when the master is down; ./quickstart.sh
starts over with a fresh store)
EOF
