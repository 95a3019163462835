#!/bin/sh
# SPDX-License-Identifier: MIT
# Install test: installs the build tree into a fresh temporary prefix with
# `cmake --install`, then builds examples/hello.c against that prefix the
# way a user would (its Makefile, pkg-config, PKG_CONFIG_PATH) and runs it
# on the memory backend. Fails when a header, the library, the pkg-config
# file or its paths are missing or wrong after installation.
#
# usage: test_install.sh BUILD_DIR SOURCE_DIR [CFLAGS [LDFLAGS]]
# CFLAGS/LDFLAGS are the build's own (sanitizer builds need them to link).
set -eu

build=$1
src=$2
cflags=${3:-}
ldflags=${4:-}

tmp=$(mktemp -d "${UC_TEST_TMPDIR:-/tmp}/uc-install.XXXXXX" 2>/dev/null ||
      mktemp -d /tmp/uc-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() { echo "test_install: $*" >&2; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }

[ -f "$prefix/include/utxocache/utxocache.h" ] ||
    fail "utxocache.h not installed under $prefix/include"
pc=$(find "$prefix" -name utxocache.pc | head -n 1)
[ -n "$pc" ] || fail "utxocache.pc not installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
ls "$libdir"/libutxocache.* >/dev/null 2>&1 ||
    fail "libutxocache not installed next to its pkg-config file ($libdir)"
[ -x "$prefix/bin/utxocache" ] || fail "utxocache CLI not installed"

# The .pc file must point into the prefix it was installed to.
incdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=includedir utxocache)
[ -f "$incdir/utxocache/utxocache.h" ] ||
    fail "pkg-config includedir '$incdir' has no utxocache/utxocache.h"

mkdir "$tmp/example"
cp "$src/examples/hello.c" "$src/examples/Makefile" "$tmp/example/"
PKG_CONFIG_PATH=$pcdir make -C "$tmp/example" CFLAGS="-O1 -g $cflags" \
    LDFLAGS="$ldflags" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "building examples/hello.c failed"; }

out=$(env -u REDIS_URL -u REDIS_HOST UTXOCACHE_BACKEND=memory \
      LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      "$tmp/example/hello") || fail "hello exited with status $?"
echo "$out"
echo "$out" | grep -q "backend memory" || fail "hello did not use memory"
echo "$out" | grep -q "get 'hello' -> 'world'" || fail "hello: wrong value"
echo "$out" | grep -q "from loader" || fail "hello: first read not loaded"
echo "$out" | grep -q "from cache" || fail "hello: second read not cached"

# The installed CLI runs and knows its version.
LD_LIBRARY_PATH="$libdir" "$prefix/bin/utxocache" --version |
    grep -q "^utxocache " || fail "installed utxocache --version failed"
echo "test_install: ok"
