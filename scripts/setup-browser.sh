#!/usr/bin/env bash
# Headless Chromium for the console's browser tests (tests/console), from Debian's packages. Idempotent.
# Playwright (pinned in requirements/lock.txt) drives this system browser; it never downloads one of its own.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
