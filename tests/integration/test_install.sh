#!/bin/sh
# SPDX-License-Identifier: MIT
# Install test: installs the build tree into a fresh temporary prefix with
# `cmake --install`, checks that every installed piece is there and points
# into that prefix, then builds examples/hello.c against the prefix by both
# routes a user has and runs each binary on the memory backend:
#   pkg-config   examples/Makefile: hello (plain `pkg-config --libs`, the
#                shared library) and hello-static (the archive and
#                `pkg-config --libs --static`);
#   CMake        examples/CMakeLists.txt: find_package(utxocache), targets
#                utxocache::utxocache and utxocache::utxocache_static.
# It also checks that the shared library exports the public API and nothing
# else: exactly the functions the installed headers mark UC_EXPORT.
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
need() { [ -e "$prefix/$1" ] || fail "not installed: $1"; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }

# ---- what is installed, and where ----
pc=$(find "$prefix" -name utxocache.pc | head -n 1)
[ -n "$pc" ] || fail "utxocache.pc not installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
lib=${libdir#"$prefix"/}
for f in include/utxocache/utxocache.h include/utxocache/export.h \
         include/utxocache/version.h \
         "$lib/libutxocache.a" "$lib/libutxocache.so" \
         "$lib/cmake/utxocache/utxocacheConfig.cmake" \
         "$lib/cmake/utxocache/utxocacheConfigVersion.cmake" \
         "$lib/cmake/utxocache/utxocacheTargets.cmake" \
         bin/utxocache bin/utxoiq-api \
         share/man/man1/utxocache.1 share/man/man3/libutxocache.3 \
         share/man/man8/utxoiq-api.8 \
         lib/systemd/system/utxoiq-api.service; do
    need "$f"
done

# The shared library: a SONAME, and the name it gives exists beside it.
soname=$(readelf -d "$libdir/libutxocache.so" |
         sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ -n "$soname" ] || fail "libutxocache.so has no SONAME"
[ -e "$libdir/$soname" ] || fail "SONAME '$soname' not installed"
echo "test_install: SONAME $soname"

# Its dynamic symbols are the UC_EXPORT declarations of the installed
# headers, no more (no uc__ internals) and no fewer.
nm -D --defined-only "$libdir/libutxocache.so" | awk '{ print $3 }' |
    sort >"$tmp/exported"
# A declaration may break after the return type: `UC_EXPORT int` then
# `uc_name(` on the next line; join such pairs before reading the name.
awk '/^UC_EXPORT/ { d = $0; if (d !~ /\(/) { getline n; d = d " " n }
                    sub(/\(.*/, "", d); n = split(d, w, /[ *]+/); print w[n] }' \
    "$prefix"/include/utxocache/*.h | sort >"$tmp/declared"
[ -s "$tmp/declared" ] || fail "no UC_EXPORT declaration found in the headers"
if ! cmp -s "$tmp/exported" "$tmp/declared"; then
    diff "$tmp/declared" "$tmp/exported" >&2 || true
    fail "exported symbols differ from the headers' UC_EXPORT declarations"
fi
grep -q '^uc__' "$tmp/exported" && fail "an internal uc__ symbol is exported"
echo "test_install: $(wc -l <"$tmp/exported") symbols exported, all declared"

# The .pc file must point into the prefix it was installed to, and agree
# with the headers and the CMake package on the version.
incdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=includedir utxocache)
[ -f "$incdir/utxocache/utxocache.h" ] ||
    fail "pkg-config includedir '$incdir' has no utxocache/utxocache.h"
version=$(PKG_CONFIG_PATH=$pcdir pkg-config --modversion utxocache)
grep -q "UC_VERSION_STRING \"$version\"" "$prefix/include/utxocache/version.h" ||
    fail "version.h does not say $version"

# The unit starts the binary of this prefix.
grep -qx "ExecStart=$prefix/bin/utxoiq-api serve" \
    "$prefix/lib/systemd/system/utxoiq-api.service" ||
    fail "utxoiq-api.service: ExecStart is not $prefix/bin/utxoiq-api serve"

# ---- running a built program: memory backend, no Redis ----
run_hello() { # name binary [LD_LIBRARY_PATH]
    out=$(env -u REDIS_URL -u REDIS_HOST UTXOCACHE_BACKEND=memory \
          ${3:+LD_LIBRARY_PATH="$3${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"} \
          "$2") || fail "$1 exited with status $?"
    echo "$out" | sed "s|^|$1: |"
    echo "$out" | grep -q "libutxocache $version (headers $version)" ||
        fail "$1: library or header version is not $version"
    echo "$out" | grep -q "backend memory" || fail "$1 did not use memory"
    echo "$out" | grep -q "get 'hello' -> 'world'" || fail "$1: wrong value"
    echo "$out" | grep -q "from loader" || fail "$1: first read not loaded"
    echo "$out" | grep -q "from cache" || fail "$1: second read not cached"
}
links_shared() { readelf -d "$1" | grep -q "(NEEDED).*\[$soname\]"; }

# ---- route 1: pkg-config (examples/Makefile) ----
mkdir "$tmp/pc"
cp "$src/examples/hello.c" "$src/examples/Makefile" "$tmp/pc/"
PKG_CONFIG_PATH=$pcdir make -C "$tmp/pc" CFLAGS="-O1 -g $cflags" \
    LDFLAGS="$ldflags" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "building examples with pkg-config failed"; }
links_shared "$tmp/pc/hello" || fail "pkg-config hello does not load $soname"
links_shared "$tmp/pc/hello-static" &&
    fail "pkg-config hello-static loads $soname instead of the archive"
run_hello pkg-config/hello "$tmp/pc/hello" "$libdir"
run_hello pkg-config/hello-static "$tmp/pc/hello-static"

# ---- route 2: CMake find_package (examples/CMakeLists.txt) ----
cp -r "$src/examples" "$tmp/cm"
rm -f "$tmp/cm/hello" "$tmp/cm/hello-static"
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="$cflags" \
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags" >"$tmp/cmake.log" 2>&1 &&
cmake --build "$tmp/cm/build" >>"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log" >&2; fail "building examples with CMake failed"; }
grep -q "utxocache $version from $libdir/cmake/utxocache" "$tmp/cmake.log" ||
    { cat "$tmp/cmake.log" >&2; fail "find_package did not find $version in $prefix"; }
links_shared "$tmp/cm/build/hello" || fail "CMake hello does not load $soname"
links_shared "$tmp/cm/build/hello_static" &&
    fail "CMake hello_static loads $soname instead of the archive"
run_hello cmake/hello "$tmp/cm/build/hello"
run_hello cmake/hello_static "$tmp/cm/build/hello_static"

# ---- the installed programs ----
# utxocache finds the shared library through its RUNPATH; utxoiq-api links
# the archive (a cache hit stays off the PLT) and must not load it.
env -u LD_LIBRARY_PATH "$prefix/bin/utxocache" --version | grep -q "$version" ||
    fail "installed utxocache --version failed"
env -u LD_LIBRARY_PATH "$prefix/bin/utxoiq-api" --version | grep -q "$version" ||
    fail "installed utxoiq-api --version failed"
! links_shared "$prefix/bin/utxoiq-api" ||
    fail "installed utxoiq-api loads $soname instead of the archive"
for exe in utxocache; do
    loaded=$(env -u LD_LIBRARY_PATH ldd "$prefix/bin/$exe" |
             sed -n "s/^[[:space:]]*$soname => \([^ ]*\).*/\1/p")
    [ -n "$loaded" ] && [ "$(readlink -f "$loaded")" = \
        "$(readlink -f "$libdir/$soname")" ] ||
        fail "installed $exe does not load $libdir/$soname (got '$loaded')"
done
echo "test_install: ok"
