#!/usr/bin/env bash
# Orrery quickstart on the embedded default (SQLite): builds, loads a sample TLD into a fresh
# store, and generates its BIND zone file and named.conf fragment. Everything lands in ./run/.
set -euo pipefail
cd "$(dirname "$0")"
DOMAINS="${DOMAINS:-10000}"

cargo build --release --locked -p orrery-store -p orrery-generator
bin=target/release
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
echo
echo "Try:"
echo "  $bin/orrery-admin --db $db domain show hello.test"
echo "  $bin/orrery-admin --db $db domain update hello.test --add-status clientHold"
echo "  $bin/orrery-generator --db $db --out run/zones     # serial grows, hello.test leaves the zone"
echo "  grep -n hello run/zones/test.zone"
