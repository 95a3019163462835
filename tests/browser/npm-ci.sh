#!/bin/sh
# SPDX-License-Identifier: MIT
# Puts the dashboard test's browser driver (dashboard.mjs) and its one
# package, playwright-core from the committed lock file, into a directory
# of the build tree; `npm ci` runs only when the lock file is newer than
# what that directory holds. playwright-core downloads no browser: the test
# drives Debian's chromium.
#
# usage: npm-ci.sh SOURCE_DIR BUILD_DIR
set -eu

src=${1:?usage: npm-ci.sh SOURCE_DIR BUILD_DIR}
bin=${2:?usage: npm-ci.sh SOURCE_DIR BUILD_DIR}

mkdir -p "$bin"
cp "$src/package.json" "$src/package-lock.json" "$src/dashboard.mjs" "$bin/"
stamp=$bin/node_modules/.package-lock.json
if [ -f "$stamp" ] && [ -d "$bin/node_modules/playwright-core" ] &&
    [ "$stamp" -nt "$src/package-lock.json" ]; then
    exit 0
fi
cd "$bin"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund \
    --ignore-scripts --loglevel=error
touch "$stamp"
