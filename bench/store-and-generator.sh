#!/usr/bin/env bash
# Benchmark: bulk-load a synthetic TLD into SQLite and PostgreSQL, then generate its BIND zone
# file from each, printing wall time and peak memory (max RSS) of each step.
#   bench/store-and-generator.sh [DOMAINS]      (default 1000000)
# PostgreSQL is reached through its Unix socket (PGHOST, default /var/run/postgresql); a fresh
# database is created and dropped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N="${1:-1000000}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
build orrery-store orrery-generator
bench_start

# measure LABEL CMD...: runs CMD, prints "LABEL: S s, M MiB max RSS".
measure() {
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r secs kib <"$work/time"
    printf '%-40s %8.1f s %8.0f MiB max RSS\n' "$label" "$secs" "$((kib / 1024))"
}

echo "synthetic TLD 'test.' with $N domains, seed 1; $(nproc) cores; $(date -u +%F)"
measure "SQLite: load" "$bin/orrery-admin" --db "sqlite:$work/bench.db" load-synthetic --zone test --domains "$N" --seed 1
measure "SQLite: generate zone" "$bin/orrery-generator" --db "sqlite:$work/bench.db" --out "$work/zones-sqlite"
ls -l "$work/zones-sqlite/test.zone" | awk '{printf "%-40s %8.1f MiB zone file, ", "", $5/1048576}'
grep -c . "$work/zones-sqlite/test.zone" | awk '{print $1 " lines"}'
du -m "$work/bench.db" | awk '{printf "%-40s %8d MiB store file\n", "", $1}'

BENCH_DB="" fresh_db "orrery_bench_$$"
measure "PostgreSQL: load (COPY)" "$bin/orrery-admin" --db "$url" load-synthetic --zone test --domains "$N" --seed 1
measure "PostgreSQL: generate zone" "$bin/orrery-generator" --db "$url" --out "$work/zones-pg"
cmp <(grep -v -e '^; orrery-serial' -e 'SOA' "$work/zones-sqlite/test.zone") \
    <(grep -v -e '^; orrery-serial' -e 'SOA' "$work/zones-pg/test.zone") \
    && echo "zone files from both backends are identical (but for the serial)"
