#!/usr/bin/env bash
# Build the virtualenvs of the Responses client tests, next to .venv (idempotent; packages from PyPI only):
#   .venv-sdk1r   the newest openai 1.x release (the first 1.x line with Responses, Conversations and Containers),
#                 everything else from .venv (built by sdk-compat-venv.sh, as .venv-sdk1 is);
#   .venv-agents  the OpenAI Agents SDK (requirements/agents.txt, pinned) over .venv's packages: its own pins
#                 (e.g. websockets < 17) shadow .venv's there without changing .venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_VENV="${MAIN_VENV:-$REPO/.venv}"
OPENAI_1X_VERSION="${OPENAI_1X_VERSION:-1.109.1}"
AGENTS_VENV="${AGENTS_VENV:-$REPO/.venv-agents}"

COMPAT_VENV="$REPO/.venv-sdk1r" OPENAI_COMPAT_VERSION="$OPENAI_1X_VERSION" bash "$REPO/scripts/sdk-compat-venv.sh"

if [[ ! -x "$AGENTS_VENV/bin/python" ]]; then
    "$MAIN_VENV/bin/python" -m venv --without-pip "$AGENTS_VENV"
fi
MAIN_SITE="$("$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
AGENTS_SITE="$("$AGENTS_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$MAIN_SITE')" > "$AGENTS_SITE/_threadline_main_venv.pth"
stamp="$AGENTS_SITE/.threadline-agents-$(sha256sum "$REPO/requirements/agents.txt" | cut -c1-16)"
if [[ ! -e "$stamp" ]]; then
    "$MAIN_VENV/bin/python" -m pip --python "$AGENTS_VENV/bin/python" install --quiet --disable-pip-version-check \
        --no-deps -r "$REPO/requirements/agents.txt"
    touch "$stamp"
fi
version="$("$AGENTS_VENV/bin/python" -c 'import importlib.metadata as md; print(md.version("openai-agents"))')"
echo "client-venvs: $AGENTS_VENV ready (openai-agents $version; other packages from $MAIN_VENV)"
