#!/usr/bin/env bash
# Install the Node client packages of tests/clients/node (the Vercel AI SDK, pinned by its package-lock.json) from the
# npm registry. Idempotent; skipped with a note when npm is missing (the tests then skip with a reason).
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/clients/node"
if ! command -v npm >/dev/null; then
    echo "setup-node-clients: npm not found; the Node client tests will be skipped" >&2
    exit 0
fi
if [[ ! -d "$DIR/node_modules/ai" || "$DIR/package-lock.json" -nt "$DIR/node_modules/.package-lock.json" ]]; then
    (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup-node-clients: $DIR/node_modules ready"
