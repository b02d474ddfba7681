#!/usr/bin/env bash
# Idempotently create <repo>/.venv with the Python test dependencies
# (pinned in tests/python/requirements.txt). Does not install RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
REQ=tests/python/requirements.txt
STAMP="$VENV/.requirements.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import pika, pytest' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" > "$STAMP"
fi

# The web console's browser tests: Debian's Chromium and playwright-core
# (tests/console/package-lock.json).
if ! [ -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y chromium; else sudo apt-get install -y chromium; fi
fi
LOCK=tests/console/package-lock.json
STAMP_JS=tests/console/node_modules/.lock.sha256
want_js="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ "$want_js" != "$(cat "$STAMP_JS" 2>/dev/null || true)" ]; then
    (cd tests/console && npm ci --no-audit --no-fund --silent)
    echo "$want_js" > "$STAMP_JS"
fi
