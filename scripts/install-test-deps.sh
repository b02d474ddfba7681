#!/usr/bin/env bash
# Idempotently create <repo>/.venv with the Python test dependencies
# (pinned in tests/python/requirements.txt) and install rabbitmqadmin v2
# (cargo). Does not install RabbitMQ.
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

# rabbitmqadmin v2 (the Rust one, from crates.io) for tests/rabbitmqadmin/run.sh
# and tests/python/test_rabbitmqadmin.py, installed outside the checkout (kept
# across clones on one machine) unless that version is there already.
# WARREN_SKIP_RABBITMQADMIN=1 skips the install and both tests.
RABBITMQADMIN_VERSION=2.35.0
RABBITMQADMIN_ROOT=${RABBITMQADMIN_ROOT:-$HOME/.cache/warren/tools}
if [ "${WARREN_SKIP_RABBITMQADMIN:-0}" != 1 ]; then
    if ! "$RABBITMQADMIN_ROOT/bin/rabbitmqadmin" --version 2>/dev/null | grep -q "$RABBITMQADMIN_VERSION"; then
        cargo install --quiet --locked --root "$RABBITMQADMIN_ROOT" --version "$RABBITMQADMIN_VERSION" rabbitmqadmin
    fi
fi

# Prometheus (Debian's package) for the metrics scrape test
# (tests/python/test_prometheus.py). CI runs as root on a fresh Debian.
if ! command -v prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        # A fresh machine has no package lists yet.
        apt-get -o DPkg::Lock::Timeout=300 update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends prometheus >/dev/null
    else
        echo "prometheus not installed (apt-get install prometheus); its test will be skipped" >&2
    fi
fi

# The web console's browser tests: Debian's Chromium and playwright-core
# (tests/console/package-lock.json).
if ! [ -x /usr/bin/chromium ]; then
    apt-get -o DPkg::Lock::Timeout=300 update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium >/dev/null
fi
LOCK=tests/console/package-lock.json
STAMP_JS=tests/console/node_modules/.lock.sha256
want_js="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ "$want_js" != "$(cat "$STAMP_JS" 2>/dev/null || true)" ]; then
    (cd tests/console && npm ci --no-audit --no-fund --silent)
    echo "$want_js" > "$STAMP_JS"
fi
