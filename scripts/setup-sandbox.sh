#!/bin/sh
# Set up the code_interpreter sandbox: bubblewrap plus a dedicated Python environment.
#
# Idempotent: work already done is skipped (the venv carries a stamp keyed on the requirements hash).
# Environment:
#   THREADLINE_SANDBOX_VENV  where to build the venv (default /opt/threadline/sandbox-venv). The path must be
#                            traversable by unprivileged users: sandboxed code runs under per-session uids.
#   THREADLINE_SANDBOX_FORCE=1  rebuild the venv even if the stamp matches.
set -eu
umask 022

here=$(cd "$(dirname "$0")/.." && pwd)
req="$here/requirements/sandbox.txt"
venv=${THREADLINE_SANDBOX_VENV:-/opt/threadline/sandbox-venv}
py=/usr/bin/python3.11
stamp_version=1

log() { printf 'setup-sandbox: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "need root to install: $* (run: sudo apt-get install -y $*)"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists when the install fails without it (fresh machines, stale lists).
    if ! apt-get install -y --no-install-recommends "$@"; then
        if [ "$apt_updated" = 0 ]; then
            apt-get update
            apt_updated=1
        fi
        apt-get install -y --no-install-recommends "$@"
    fi
}

# 1. bubblewrap
if ! command -v bwrap >/dev/null 2>&1; then
    log "installing bubblewrap"
    apt_install bubblewrap
fi
log "$(bwrap --version)"

# 2. Debian's python3.11 with venv support. (A python under /root or a pyenv prefix cannot be bound into an
#    unprivileged sandbox, hence the system interpreter.)
if [ ! -x "$py" ]; then
    log "installing python3.11"
    apt_install python3.11 python3.11-venv
fi
# Debian's python3.11 ships ensurepip disabled unless python3.11-venv is installed.
if command -v dpkg-query >/dev/null 2>&1; then
    if ! dpkg-query -W -f='${Status}' python3.11-venv 2>/dev/null | grep -q 'install ok installed'; then
        log "installing python3.11-venv"
        apt_install python3.11-venv
    fi
elif ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    log "error: $py has no venv/ensurepip support"
    exit 1
fi

# libseccomp (the server builds the sandbox's seccomp filter through it, via pyseccomp).
if ! ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; then
    log "installing libseccomp2"
    apt_install libseccomp2
fi

# 3. The venv must be reachable by the unprivileged sandbox uids (a root server runs sandboxes as uids 20000+).
mkdir -p "$(dirname "$venv")"
if [ "$(id -u)" = 0 ]; then
    d=$(dirname "$venv")
    while [ "$d" != / ]; do
        case "$(stat -c %A "$d")" in
            *x|*t) ;;
            *) log "error: $d is not traversable by other users (o+x), so sandbox uids cannot reach $venv."
               log "choose another THREADLINE_SANDBOX_VENV (the default /opt/threadline/sandbox-venv works)"
               exit 1 ;;
        esac
        d=$(dirname "$d")
    done
fi

# 4. The venv, rebuilt only when the requirements, interpreter or this script's layout changed.
key=$( (cat "$req"; "$py" -VV; echo "layout $stamp_version") | sha256sum | cut -d' ' -f1)
stamp="$venv/.threadline-sandbox-stamp"
if [ "${THREADLINE_SANDBOX_FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] \
        && [ -x "$venv/bin/python" ]; then
    log "venv $venv is up to date"
else
    log "building venv $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        --only-binary=:all: -r "$req"
    # Pre-build matplotlib's font cache. The sandbox copies it into its private MPLCONFIGDIR at start, so the
    # first plot does not spend ~0.5 s scanning fonts. The venv is bound at the same path inside the sandbox,
    # so the font paths recorded in the cache stay valid.
    mkdir -p "$venv/share/threadline/mplconfig"
    MPLCONFIGDIR="$venv/share/threadline/mplconfig" MPLBACKEND=Agg "$venv/bin/python" -c \
        'import matplotlib.font_manager as fm; fm.findfont("DejaVu Sans")'
    # The sandbox mounts the venv read-only: make sure bytecode exists for everything it may import.
    "$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
    "$venv/bin/python" -c 'import numpy, pandas, matplotlib, scipy, openpyxl, PIL'
    echo "$key" > "$stamp"
    log "venv built"
fi

# 5. Everything in it must be readable by the sandbox uids.
chmod -R a+rX "$venv"
log "ok: $venv ($(du -sh "$venv" | cut -f1))"
