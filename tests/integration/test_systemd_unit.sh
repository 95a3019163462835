#!/bin/sh
# SPDX-License-Identifier: MIT
# The systemd unit as `cmake --install` writes it, into a fresh temporary
# prefix: `systemd-analyze verify` accepts it without a word (ExecStart
# exists, every directive is known, the man page in Documentation= is found
# in the same prefix), `systemd-analyze security` rates its exposure 2.0 or
# lower, and the hardening this project promises is all there. Nothing is
# started: verify and security --offline only read files, so this runs
# without systemd as PID 1.
#
# usage: test_systemd_unit.sh BUILD_DIR
# Exits 77 (reported as skipped) when systemd-analyze is not installed.
set -eu

build=$1

fail() { echo "test_systemd_unit: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null 2>&1 || {
    echo "test_systemd_unit: SKIPPED: systemd-analyze is not installed (systemd)"
    exit 77
}

tmp=$(mktemp -d "${UC_TEST_TMPDIR:-/tmp}/uc-unit.XXXXXX" 2>/dev/null ||
      mktemp -d /tmp/uc-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
unit=$prefix/lib/systemd/system/utxoiq-api.service
[ -f "$unit" ] || fail "unit not installed at $unit"

# verify prints problems as warnings and may still exit 0: any output fails.
MANPATH=$prefix/share/man SYSTEMD_LOG_COLOR=0 \
    timeout 60 systemd-analyze verify "$unit" >"$tmp/verify" 2>&1 ||
    { cat "$tmp/verify" >&2; fail "systemd-analyze verify failed"; }
[ ! -s "$tmp/verify" ] ||
    { cat "$tmp/verify" >&2; fail "systemd-analyze verify warns"; }
echo "test_systemd_unit: systemd-analyze verify: clean"

# --threshold is in tenths: 20 is an exposure of 2.0 ("OK").
timeout 60 systemd-analyze security --offline=yes --threshold=20 "$unit" \
    >"$tmp/security" 2>&1 ||
    { cat "$tmp/security" >&2; fail "exposure above 2.0"; }
grep -i "overall exposure" "$tmp/security" | sed 's/^/test_systemd_unit: /'

for line in "ExecStart=$prefix/bin/utxoiq-api serve" \
            'DynamicUser=yes' 'StateDirectory=utxoiq' \
            'Environment=DATABASE_URL=sqlite:/var/lib/utxoiq/utxoiq.db' \
            'EnvironmentFile=-/etc/utxoiq/api.env' \
            'ProtectSystem=strict' 'ProtectHome=yes' 'NoNewPrivileges=yes' \
            'PrivateTmp=yes' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
            'CapabilityBoundingSet=' 'Restart=on-failure' 'KillSignal=SIGTERM' \
            'TimeoutStopSec=15s'; do
    grep -qxF "$line" "$unit" || fail "unit lacks '$line'"
done
echo "test_systemd_unit: ok"
