#!/usr/bin/env bash
# Installs what tests/browser needs on a fresh Debian machine: Debian's Chromium
# (playwright cannot download its own browsers here) and JupyterLab + Playwright in the
# venv given as $1 (default .venv). Idempotent and quiet; fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "browser-setup: no Python venv at $VENV (run .ci/setup first, or pass the venv as \$1)" >&2
    exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "browser-setup: /usr/bin/chromium does not run" >&2; exit 1; }

if ! "$VENV/bin/python" -c "import jupyterlab, playwright.sync_api" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "jupyterlab>=4.4" "playwright>=1.40"
fi
"$VENV/bin/python" -c "import jupyterlab, playwright.sync_api, ipywidgets" \
    || { echo "browser-setup: jupyterlab/playwright/ipywidgets not importable from $VENV" >&2; exit 1; }
echo "browser-setup: chromium, jupyterlab and playwright ready in $VENV"
