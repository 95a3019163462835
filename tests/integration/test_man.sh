#!/bin/sh
# SPDX-License-Identifier: MIT
# The manual pages as the build made them: each renders with groff (and
# with man -l) without a single warning, its NAME line is one that apropos
# can index, and every option a program's --help names is documented in
# that program's page, so a new flag without documentation fails here.
#
# usage: test_man.sh MAN_DIR [PROGRAM PAGE]...
# Exits 77 (reported as skipped) when groff is not installed.
set -eu

mandir=$1
shift

fail() { echo "test_man: $*" >&2; exit 1; }
command -v groff >/dev/null 2>&1 ||
    { echo "test_man: SKIPPED: groff is not installed (groff-base)"; exit 77; }

tmp=$(mktemp -d "${UC_TEST_TMPDIR:-/tmp}/uc-man.XXXXXX" 2>/dev/null ||
      mktemp -d /tmp/uc-man.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

pages=$(find "$mandir" -maxdepth 1 -name '*.[1-8]' | sort)
[ -n "$pages" ] || fail "no manual pages in $mandir"
for page in $pages; do
    name=$(basename "$page")
    # -ww: every warning; -z: format, print nothing. Any stderr is a failure.
    LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; fail "$name: groff failed"; }
    [ ! -s "$tmp/err" ] || { cat "$tmp/err" >&2; fail "$name: groff warns"; }
    if command -v man >/dev/null 2>&1; then
        LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" >"$tmp/out" \
            2>"$tmp/err" || { cat "$tmp/err" >&2; fail "$name: man -l failed"; }
        [ ! -s "$tmp/err" ] || { cat "$tmp/err" >&2; fail "$name: man -l warns"; }
    fi
    # whatis/apropos read the NAME section: "name \- description".
    if command -v lexgrog >/dev/null 2>&1; then
        lexgrog "$page" >"$tmp/lex" 2>&1 || true
        grep -q "\"${name%.*} - ." "$tmp/lex" ||
            { cat "$tmp/lex" >&2; fail "$name: NAME section not indexable"; }
    fi
    echo "test_man: $name renders cleanly"
done

# Options named by --help must appear in the page (rendered, so that roff
# escapes such as \- do not hide them).
while [ "$#" -ge 2 ]; do
    prog=$1
    page=$mandir/$2
    shift 2
    [ -f "$page" ] || fail "no page $page for $prog"
    "$prog" --help >"$tmp/help" 2>&1 || fail "$prog --help failed"
    LC_ALL=C.UTF-8 MANWIDTH=200 groff -man -Tutf8 -rLL=200n "$page" 2>/dev/null |
        sed 's/.\x08//g' >"$tmp/text"
    opts=$(grep -o -- '--[a-z][a-z-]*' "$tmp/help" | sort -u)
    [ -n "$opts" ] || fail "$prog --help names no option"
    for opt in $opts; do
        grep -q -e "$opt" "$tmp/text" ||
            fail "$(basename "$page"): option $opt of $(basename "$prog") --help is not documented"
    done
    echo "test_man: $(basename "$page") documents all $(echo "$opts" | wc -l) options of --help"
done
echo "test_man: ok"
