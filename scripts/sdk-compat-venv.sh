#!/usr/bin/env bash
# Build .venv-sdk1: the main virtualenv's packages, except openai pinned to an old 1.x release.
# The SDK tests (tests/sdk) run from it too, to prove the server works with clients that were never upgraded.
# Idempotent: re-running only fixes what is missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_VENV="${MAIN_VENV:-$REPO/.venv}"
COMPAT_VENV="${COMPAT_VENV:-$REPO/.venv-sdk1}"
OPENAI_VERSION="${OPENAI_COMPAT_VERSION:-1.55.3}"

if [[ ! -x "$MAIN_VENV/bin/python" ]]; then
    echo "sdk-compat-venv: main virtualenv $MAIN_VENV is missing; create it first" >&2
    exit 1
fi

MAIN_SITE="$("$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

if [[ ! -x "$COMPAT_VENV/bin/python" ]]; then
    # Same interpreter as the main venv (so compiled wheels in its site-packages fit).
    "$MAIN_VENV/bin/python" -m venv --without-pip "$COMPAT_VENV"
fi
COMPAT_SITE="$("$COMPAT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# Everything except openai comes from the main venv. The .pth line adds it as a site dir after the venv's own
# site-packages (so the openai installed below shadows the main venv's); as a site dir, its own .pth files are read
# too, among them the editable install of threadline that some tests import.
echo "import site; site.addsitedir('$MAIN_SITE')" > "$COMPAT_SITE/_threadline_main_venv.pth"

installed="$("$COMPAT_VENV/bin/python" - <<'EOF'
import importlib.metadata as md, sys, sysconfig
own = sysconfig.get_paths()["purelib"]
try:
    dist = md.distribution("openai")
    print(dist.version if str(dist.locate_file("")).startswith(own) else "")
except md.PackageNotFoundError:
    print("")
EOF
)"
if [[ "$installed" != "$OPENAI_VERSION" ]]; then
    # pip from the main venv, pointed at the compat venv's interpreter and site-packages.
    "$MAIN_VENV/bin/python" -m pip --python "$COMPAT_VENV/bin/python" install --quiet --disable-pip-version-check \
        --no-deps "openai==$OPENAI_VERSION"
fi

# openai 1.x needs a few packages the main venv no longer has (e.g. distro): install just those, into the compat venv.
missing="$("$COMPAT_VENV/bin/python" - <<'EOF'
import importlib.metadata as md
from packaging.requirements import Requirement
for line in md.requires("openai") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        ok = not req.specifier or md.version(req.name) in req.specifier
    except md.PackageNotFoundError:
        ok = False
    if not ok:
        print(str(req).split(";")[0])
EOF
)"
if [[ -n "$missing" ]]; then
    # shellcheck disable=SC2086
    "$MAIN_VENV/bin/python" -m pip --python "$COMPAT_VENV/bin/python" install --quiet --disable-pip-version-check \
        --no-deps $missing
fi

version="$("$COMPAT_VENV/bin/python" -c 'import openai; print(openai.__version__)')"
if [[ "$version" != "$OPENAI_VERSION" ]]; then
    echo "sdk-compat-venv: expected openai $OPENAI_VERSION in $COMPAT_VENV, got $version" >&2
    exit 1
fi
echo "sdk-compat-venv: $COMPAT_VENV ready (openai $version; other packages from $MAIN_VENV)"
