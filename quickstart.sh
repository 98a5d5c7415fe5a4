#!/usr/bin/env bash
# Orrery quickstart on the embedded default (SQLite): builds, loads a sample TLD into a fresh
# store, generates its BIND zone file and named.conf fragment, writes a satellite snapshot and
# starts a satellite on it in the background (127.0.0.1:$PORT, default 5353). Everything lands
# in ./run/.
set -euo pipefail
cd "$(dirname "$0")"
DOMAINS="${DOMAINS:-10000}"
PORT="${PORT:-5353}"

cargo build --release --locked -p orrery-store -p orrery-generator -p orrery-satellite
bin=target/release
# A satellite this script started last time would still hold the port.
if [ -f run/satellite.pid ]; then
    kill "$(cat run/satellite.pid)" 2>/dev/null || true
fi
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

echo "== generating BIND zone files into run/zones"
"$bin/orrery-generator" --db "$db" --out run/zones
ls -l run/zones
if command -v named-checkzone >/dev/null 2>&1 || [ -x /usr/sbin/named-checkzone ]; then
    PATH="$PATH:/usr/sbin" named-checkzone -i local test run/zones/test.zone
fi

echo "== writing a satellite snapshot to run/satellite.snap"
"$bin/orrery-generator" --db "$db" --satellite-snapshot run/satellite.snap --no-zones
sed "s/127\.0\.0\.1:5353/127.0.0.1:$PORT/g" deploy/satellite.example.toml > run/satellite.toml

echo "== starting orrery-satellite on 127.0.0.1:$PORT (log: run/satellite.log)"
"$bin/orrery-satellite" --snapshot run/satellite.snap --config run/satellite.toml \
    > run/satellite.log 2>&1 &
echo $! > run/satellite.pid
for _ in $(seq 50); do
    if ! kill -0 "$(cat run/satellite.pid)" 2>/dev/null; then
        cat run/satellite.log
        echo "orrery-satellite exited (port $PORT taken? try PORT=5354 ./quickstart.sh)" >&2
        rm -f run/satellite.pid
        exit 1
    fi
    grep -q serving run/satellite.log && break
    sleep 0.1
done
if command -v dig >/dev/null 2>&1; then
    dig @127.0.0.1 -p "$PORT" hello.test NS
fi
echo
echo "The satellite runs in the background (pid $(cat run/satellite.pid)). Try:"
echo "  dig @127.0.0.1 -p $PORT hello.test NS        # referral: NS in AUTHORITY, glue in ADDITIONAL"
echo "  dig @127.0.0.1 -p $PORT test SOA             # authoritative (aa), serial = journal head"
echo "  dig @127.0.0.1 -p $PORT nope.test A          # NXDOMAIN with the SOA"
echo "  dig @127.0.0.1 -p $PORT hello.test DS        # DS from the parent side (aa)"
echo "  dig @127.0.0.1 -p $PORT version.bind TXT CH"
echo "Stop it with: kill \$(cat run/satellite.pid)"
echo
echo "Also try:"
echo "  $bin/orrery-admin --db $db domain show hello.test"
echo "  $bin/orrery-admin --db $db domain update hello.test --add-status clientHold"
echo "  $bin/orrery-generator --db $db --out run/zones     # serial grows, hello.test leaves the zone"
echo "  grep -n hello run/zones/test.zone"
