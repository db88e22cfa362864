#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python's: installs only the
# missing ones, so running it again is a no-op.  Used by .ci/run and by
# developers (see README).  Packages:
#   chromium, chromium-driver: the headless browser test of the web page
#     (tests/api/test_web.py); Selenium is told their paths and never
#     downloads a browser or driver of its own.
#   postgresql: the server binaries (initdb, pg_ctl); tests/pg.py starts a
#     throw-away cluster in a temporary directory on a free port on 127.0.0.1
#     for the store, job and chaos tests (the package's own cluster is not used).
set -euo pipefail

PACKAGES=(chromium chromium-driver postgresql)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "test dependencies present: ${PACKAGES[*]}"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi
echo "installing: ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
