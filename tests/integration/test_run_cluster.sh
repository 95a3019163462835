#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/run-cluster, the body of `make run-cluster`, in a temporary run
# directory on free loopback ports: six Redis Cluster nodes, PostgreSQL, two
# utxoiq-api instances and nginx in front of them.
#
# 1. `run-cluster --check` starts everything, and its smoke check through
#    nginx passes: /healthz and /readyz answer 200, and an entry kept on
#    another primary than the one REDIS_URL names is a MISS, then a HIT,
#    and is in the cluster. It exits 0, and no process it started is left.
# 2. A second start in the same directory, in the foreground, prints the
#    same demo key (the database was kept; no second seeding), answers
#    through the load balancer, and on SIGTERM stops everything and exits 0.
#
# usage: test_run_cluster.sh SOURCE_DIR UTXOIQ_API_BINARY
set -euo pipefail

src=$1
bin=$2

fail() { echo "test_run_cluster: $*" >&2; exit 1; }
skip() { echo "test_run_cluster: SKIPPED: $*"; exit 77; }
for c in redis-server redis-cli nginx curl flock setsid; do
    command -v "$c" >/dev/null 2>&1 || skip "'$c' is not installed"
done
if [ -z "${UC_PG_BINDIR:-}" ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null &&
    ! command -v pg_ctl >/dev/null 2>&1; then
    skip "no PostgreSQL server binaries"
fi

tmp=$(mktemp -d "${UC_TEST_TMPDIR:-/tmp}/uc-cluster.XXXXXX" 2>/dev/null ||
      mktemp -d /tmp/uc-cluster.XXXXXX)
# PostgreSQL runs as `postgres` when we are root and must reach its
# directory below this one.
chmod 755 "$tmp"
run=$tmp/cluster
pid=""

# Every PID run-cluster recorded that is still alive: none may be left.
leftovers() {
    local f p out=""
    for f in "$run/pids" "$run/pids.last"; do
        [ -f "$f" ] || continue
        while read -r p _; do
            [ -n "$p" ] && kill -0 "$p" 2>/dev/null && out="$out $p"
        done <"$f"
    done
    echo "$out"
}

cleanup() {
    local i p
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 600; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # What a killed run-cluster could not stop; it was started for this test.
    for p in $(leftovers); do
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A base B with B .. B+31 and one more port (the load balancer) free now.
pick_ports() {
    local b p ok
    for _ in $(seq 50); do
        # Below the kernel's ephemeral ports (32768 and up), which any
        # client connection of a test running beside this one may hold.
        b=$((10000 + RANDOM % 22000))
        ok=1
        for p in $(seq "$b" $((b + 32))); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                ok=0
                break
            fi
        done
        if [ "$ok" -eq 1 ]; then
            base=$b
            lb=$((b + 32))
            return 0
        fi
    done
    return 1
}

# Runs run-cluster with "$@" in the background, output in $tmp/out.$n; sets
# pid, base and lb. Retried on other ports when one was taken meanwhile.
launch() {
    local n=$1
    shift
    pick_ports || fail "no free ports"
    env -u DATABASE_URL -u DB_HOST -u REDIS_URL -u REDIS_HOST -u PORT \
        UTXOIQ_BIN="$bin" UTXOIQ_CLUSTER_DIR="$run" PORT="$lb" \
        UTXOIQ_CLUSTER_BASE_PORT="$base" UTXOIQ_DEMO_INSIGHTS=50 \
        UTXOIQ_ACCESS_LOG=0 \
        "$src/scripts/run-cluster" "$@" >"$tmp/out.$n" 2>&1 &
    pid=$!
}

port_race() { grep -qE "is in use|did not start|Address already in use" "$tmp/out.$1"; }

# ---- 1: the check mode ------------------------------------------------------

st=1
for attempt in 1 2 3; do
    launch "1.$attempt" --check
    # run-cluster bounds every wait of its own; this bounds the whole.
    for ((i = 0; i < 1800; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && { cat "$tmp/out.1.$attempt" >&2; fail "--check did not finish within 180 s"; }
    st=0
    wait "$pid" || st=$?
    pid=""
    out=$tmp/out.1.$attempt
    [ "$st" -ne 0 ] && port_race "1.$attempt" && ! grep -q 'smoke check' "$out" && continue
    break
done
cat "$out"
[ "$st" -eq 0 ] || fail "run-cluster --check exited $st"
grep -q '^run-cluster: check passed$' "$out" || fail "--check did not say that the check passed"
grep -q 'X-Cache MISS' "$out" || fail "--check showed no MISS"
grep -q 'X-Cache HIT' "$out" || fail "--check showed no HIT"
[ -s "$run/pids.last" ] || fail "run-cluster recorded no PIDs"
[ "$(wc -l <"$run/pids.last")" -eq 10 ] ||
    fail "run-cluster recorded $(wc -l <"$run/pids.last") PIDs, not 10 (6 redis, postgres, 2 services, nginx)"
left=$(leftovers)
[ -z "$left" ] || fail "after --check, still running:$left"
key1=$(sed -n 's/^demo admin API key: \(uiq_[0-9a-f]*\).*/\1/p' "$out")
[ -n "$key1" ] || fail "--check printed no demo key"

# ---- 2: the foreground, stopped by SIGTERM -----------------------------------

for attempt in 1 2 3; do
    launch "2.$attempt"
    out=$tmp/out.2.$attempt
    up=0
    for ((i = 0; i < 1200; i++)); do
        if grep -q '^Ctrl-C stops everything' "$out"; then
            up=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ "$up" -eq 1 ] && break
    kill -0 "$pid" 2>/dev/null && { cat "$out" >&2; fail "start 2: not up within 120 s"; }
    wait "$pid" || true
    pid=""
    port_race "2.$attempt" || { cat "$out" >&2; fail "start 2: run-cluster exited"; }
done
[ "$up" -eq 1 ] || fail "start 2: no ports could be bound"
grep -q "loading demo data" "$out" && fail "start 2 seeded again"
key2=$(sed -n 's/^demo admin API key: \(uiq_[0-9a-f]*\).*/\1/p' "$out")
[ "$key2" = "$key1" ] || fail "start 2 printed another key than start 1"
grep -q "saved in" "$out" || fail "start 2 did not say the key was reused"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    -H "Authorization: Bearer $key2" "http://127.0.0.1:$lb/api/v1/feedback/user")
[ "$code" = 200 ] || fail "start 2: the key got $code through the load balancer"
ups=$(for _ in 1 2 3 4; do
    curl -s -o /dev/null -D - --max-time 5 "http://127.0.0.1:$lb/healthz" |
        tr -d '\r' | sed -n 's/^X-Upstream: //p'
done | sort -u | wc -l)
[ "$ups" -eq 2 ] || fail "start 2: the load balancer used $ups instance(s), not 2"

kill -TERM "$pid"
for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "run-cluster did not exit within 60 s of SIGTERM"
st=0
wait "$pid" || st=$?
pid=""
[ "$st" -eq 0 ] || { cat "$out" >&2; fail "run-cluster exited $st after SIGTERM"; }
left=$(leftovers)
[ -z "$left" ] || fail "after SIGTERM, still running:$left"
echo "test_run_cluster: ok (check passed through nginx; everything stopped after --check and after SIGTERM)"
