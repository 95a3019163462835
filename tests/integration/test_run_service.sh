#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/run-service, the body of `make run`, in a temporary run directory
# on a free loopback port: the first start seeds the database, makes a demo
# admin key, saves it mode 0600 and prints it; the key works. A second
# start prints the same key and makes none. After the database is deleted,
# the saved key is refused by the service, so the third start replaces it
# with a new one that works. Every service is stopped by its PID with
# SIGTERM and must exit 0.
#
# usage: test_run_service.sh SOURCE_DIR UTXOIQ_API_BINARY
set -euo pipefail

src=$1
bin=$2

fail() { echo "test_run_service: $*" >&2; exit 1; }
command -v curl >/dev/null 2>&1 ||
    { echo "test_run_service: SKIPPED: curl is not installed"; exit 77; }

tmp=$(mktemp -d "${UC_TEST_TMPDIR:-/tmp}/uc-run.XXXXXX" 2>/dev/null ||
      mktemp -d /tmp/uc-run.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# A port nothing listens on now; the start is retried on another if the
# service still finds it taken.
pick_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Starts run-service in the background and waits (30 s at most) for the
# key line of its banner; sets pid, port and key.
start() {
    local out=$tmp/out.$1 i
    for _ in 1 2 3; do
        port=$(pick_port) || fail "no free port"
        env -u DATABASE_URL -u DB_HOST -u REDIS_URL -u REDIS_HOST \
            UTXOIQ_BIN="$bin" UTXOIQ_RUN_DIR="$tmp/var" PORT="$port" \
            LISTEN_ADDR=127.0.0.1 UTXOIQ_DEMO_INSIGHTS=20 \
            UTXOIQ_ACCESS_LOG=0 \
            "$src/scripts/run-service" >"$out" 2>"$out.err" &
        pid=$!
        for ((i = 0; i < 300; i++)); do
            if grep -q '^demo admin API key: ' "$out"; then
                key=$(sed -n 's/^demo admin API key: \(uiq_[0-9a-f]*\).*/\1/p' "$out")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            cat "$out" "$out.err" >&2
            fail "start $1: no key printed within 30 s"
        fi
        wait "$pid" || true
        pid=""
        # A start that lost its port may have seeded the database already:
        # what it said is kept for the checks below.
        cat "$out.err" >>"$out.before"
        # Another process took the port between the pick and the bind.
        grep -qE "address in use|cannot start HTTP daemon" "$out.err" ||
            { cat "$out" "$out.err" >&2; fail "start $1: the service exited"; }
    done
    fail "start $1: no port could be bound"
}

stop() {
    kill -TERM "$pid"
    local st=0
    wait "$pid" || st=$?
    pid=""
    [ "$st" -eq 0 ] || { cat "$tmp"/out.*.err >&2; fail "service exited $st after SIGTERM"; }
}

status_with() { # key
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Authorization: Bearer $1" "http://127.0.0.1:$port/api/v1/feedback/user"
}

start 1
key1=$key
[ -n "$key1" ] || fail "start 1 printed no key"
[ "$(status_with "$key1")" = 200 ] || fail "start 1: the printed key is refused"
[ "$(head -n 1 "$tmp/var/demo-key")" = "$key1" ] || fail "key not saved"
[ "$(stat -c %a "$tmp/var/demo-key")" = 600 ] ||
    fail "var/demo-key has mode $(stat -c %a "$tmp/var/demo-key"), not 600"
cat "$tmp/out.1.err" >>"$tmp/out.1.before"
grep -q "loading demo data" "$tmp/out.1.before" || fail "start 1 did not seed"
stop

start 2
[ "$key" = "$key1" ] || fail "start 2 printed a new key instead of reusing it"
grep -q "saved in" "$tmp/out.2" || fail "start 2 did not say the key was reused"
[ "$(status_with "$key")" = 200 ] || fail "start 2: the reused key is refused"
grep -q "loading demo data" "$tmp/out.2.err" && fail "start 2 seeded again"
stop

# A fresh database does not know the saved key.
rm -f "$tmp/var/utxoiq.db" "$tmp/var/utxoiq.db-wal" "$tmp/var/utxoiq.db-shm"
start 3
[ "$key" != "$key1" ] || fail "start 3 printed a key the database does not know"
grep -q "no longer knew" "$tmp/out.3" || fail "start 3 did not say why the key is new"
[ "$(status_with "$key")" = 200 ] || fail "start 3: the new key is refused"
[ "$(head -n 1 "$tmp/var/demo-key")" = "$key" ] || fail "new key not saved"
stop
echo "test_run_service: ok (one key reused across starts, replaced after the database went)"
