#!/usr/bin/env bash
# Run the Open Responses compliance suite (a checkout of the public openresponses repository; its code is not part of
# threadline) against a threadline server whose model is the fake of tests/fakes/open_responses.py.
#
#   scripts/open-responses-compliance.sh /path/to/openresponses [suite options, e.g. --filter basic-response -v]
#   OPEN_RESPONSES_DIR=/path/to/openresponses scripts/open-responses-compliance.sh
#
# Installs bun from the npm registry (pinned, into .cache/open-responses-tools) and the suite's dependencies with
# `bun install` (its own lockfile), starts the fake model and a threadline server on a temporary SQLite data dir, runs
# `bun run bin/compliance-test.ts --base-url ... --api-key ...`, prints its report and exits with its status (0: all
# passed). A manual / optional CI tool, not part of `make test`. Needs .venv (make setup).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${1:-${OPEN_RESPONSES_DIR:-}}"
[[ $# -gt 0 ]] && shift
if [[ -z "$SUITE" || ! -f "$SUITE/bin/compliance-test.ts" ]]; then
    echo "usage: $0 <openresponses checkout> [suite options]   (or set OPEN_RESPONSES_DIR)" >&2
    echo "  the checkout must hold bin/compliance-test.ts" >&2
    exit 2
fi
SUITE="$(cd "$SUITE" && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
BUN_VERSION="${BUN_VERSION:-1.4.4}"
TOOLS="$REPO/.cache/open-responses-tools"
BUN="$TOOLS/node_modules/.bin/bun"

if [[ ! -x "$BUN" ]] || [[ "$("$BUN" --version)" != "$BUN_VERSION" ]]; then
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "bun@$BUN_VERSION"
fi
if [[ ! -d "$SUITE/node_modules" ]]; then
    (cd "$SUITE" && "$BUN" install --frozen-lockfile --ignore-scripts)
fi

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK="$(mktemp -d)"
FAKE_PORT="$(free_port)"
PORT="$(free_port)"
KEY="compliance-$(date +%s)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PYTHONPATH="$REPO/tests:$REPO/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m fakes.open_responses --port "$FAKE_PORT" \
    >"$WORK/fake.log" 2>&1 &
pids+=($!)
OPENAI_BASE_URL="http://127.0.0.1:$FAKE_PORT/v1" OPENAI_API_KEY=fake THREADLINE_API_KEYS="$KEY" \
    THREADLINE_SANDBOX_WARM_POOL=0 PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m threadline.cli serve --host 127.0.0.1 --port "$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.2
done
if ! curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "open-responses-compliance: threadline did not start; its log:" >&2
    tail -n 40 "$WORK/server.log" >&2
    exit 1
fi

echo "open-responses-compliance: suite $SUITE ($(git -C "$SUITE" rev-parse --short HEAD 2>/dev/null || echo '?')), bun $("$BUN" --version), threadline on http://127.0.0.1:$PORT/v1"
status=0
(cd "$SUITE" && "$BUN" run bin/compliance-test.ts --base-url "http://127.0.0.1:$PORT/v1" --api-key "$KEY" "$@") || status=$?
echo "open-responses-compliance: exit status $status (0: every test passed)"
exit "$status"
